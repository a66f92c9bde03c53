"""429 failover, all-keys-exhausted 503 with Retry-After, persistence of
usage and benches across restarts (in the original tool's format), the
daily reset timer, and corrupt usage files."""
import datetime
import glob
import json
import os
import re
import stat
import time
import zoneinfo

from gkm import (KEYS, MODEL, Proxy, assert_no_keys, gen_body, mask, run,
                 slow_disk_env,
                 test, wait_for)


def pacific_today():
    return datetime.datetime.now(zoneinfo.ZoneInfo("America/Los_Angeles")).date().isoformat()


@test()
def failover_on_429(fake):
    with Proxy(fake.url, keys=KEYS[:3]) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "quota_day"}])
        st, h, body = px.generate("first")
        assert st == 200, (st, body)
        assert "first" in body.decode()
        assert [r["key"] for r in fake.requests()] == [KEYS[0], KEYS[1]]
        # The benched (key, model) pair is skipped from now on...
        fake.clear()
        for _ in range(4):
            assert px.generate()[0] == 200
        used = [r["key"] for r in fake.requests()]
        assert KEYS[0] not in used, [mask(k) for k in used]
        assert set(used) == {KEYS[1], KEYS[2]}
        # ...but only for that model.
        fake.clear()
        for _ in range(3):
            assert px.generate(model="gemini-2.5-pro")[0] == 200
        assert KEYS[0] in [r["key"] for r in fake.requests()]
        assert "per-day quota" in px.log() and "benched" in px.log(), px.log()


@test()
def all_exhausted_503(fake):
    with Proxy(fake.url, keys=KEYS[:3]) as px:
        fake.config(rules=[{"respond": "quota_day"}])
        st, h, body = px.generate()
        assert st == 503, (st, body)
        err = json.loads(body)["error"]
        assert err["code"] == 503 and err["status"] == "UNAVAILABLE"
        assert MODEL in err["message"] and "daily quota" in err["message"]
        ra = int(h["retry-after"])
        assert 0 < ra <= 25 * 3600, ra
        assert len(fake.requests()) == 3, "each key tried once"
        # Now nothing goes upstream for that model.
        fake.clear()
        st, h, body = px.generate()
        assert st == 503 and fake.requests() == []
        assert abs(int(h["retry-after"]) - ra) <= 2
        assert_no_keys(body)


@test()
def persistence_across_restart(fake):
    with Proxy(fake.url, keys=KEYS[:2], args=["--save-interval", "100ms"]) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "quota_day"}])
        for _ in range(3):
            assert px.generate()[0] == 200
        assert px.stop() == 0
        st = os.stat(px.usage)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        u = px.usage_json()
        assert u["date"] == pacific_today()
        assert u["counts"] == {KEYS[1]: 3}, u["counts"]
        assert u["model_counts"] == {KEYS[1]: {MODEL: 3}}
        assert u["exhausted_keys"] == {KEYS[0]: [MODEL]}
        workdir = px.dir
    fake.reset()
    fake.clear()
    with Proxy(fake.url, keys=KEYS[:2], workdir=workdir,
               args=["--save-interval", "100ms"]) as px:
        assert px.generate()[0] == 200
        assert [r["key"] for r in fake.requests()] == [KEYS[1]], "benched key still skipped"
        assert px.stop() == 0
        assert px.usage_json()["counts"] == {KEYS[1]: 4}


@test()
def loads_original_python_format(fake):
    import tempfile
    d = tempfile.mkdtemp(prefix="gkm-it-")
    today = pacific_today()
    with open(os.path.join(d, "key_usage.txt"), "w") as f:
        json.dump({"date": today, "counts": {KEYS[0]: 7, KEYS[1]: 2},
                   "model_counts": {KEYS[0]: {MODEL: 7}, KEYS[1]: {MODEL: 2}},
                   "exhausted_keys": {KEYS[0]: [MODEL]}}, f, indent=4)
    with Proxy(fake.url, keys=KEYS[:2], workdir=d, args=["--save-interval", "100ms"]) as px:
        assert px.generate()[0] == 200
        assert [r["key"] for r in fake.requests()] == [KEYS[1]]
        assert px.stop() == 0
        u = px.usage_json()
        # What the original loads: same four fields, same shapes.
        assert u["date"] == today
        assert u["counts"] == {KEYS[0]: 7, KEYS[1]: 3}
        assert u["model_counts"] == {KEYS[0]: {MODEL: 7}, KEYS[1]: {MODEL: 3}}
        assert u["exhausted_keys"] == {KEYS[0]: [MODEL]}
    # An earlier day's file starts fresh counts.
    with open(os.path.join(d, "key_usage.txt"), "w") as f:
        json.dump({"date": "2020-01-01", "counts": {KEYS[0]: 7},
                   "model_counts": {}, "exhausted_keys": {KEYS[0]: [MODEL]}}, f)
    fake.clear()
    with Proxy(fake.url, keys=KEYS[:2], workdir=d, args=["--save-interval", "100ms"]) as px:
        assert px.generate()[0] == 200
        assert fake.requests()[0]["key"] == KEYS[0], "old day's bench is over"
        assert px.stop() == 0
        u = px.usage_json()
        assert u["date"] == today and u["counts"] == {KEYS[0]: 1}


@test()
def corrupt_usage_file_kept_aside(fake):
    import tempfile
    d = tempfile.mkdtemp(prefix="gkm-it-")
    path = os.path.join(d, "key_usage.txt")
    with open(path, "w") as f:
        f.write('{"date": "2026-01-01", "counts": {tru')
    with Proxy(fake.url, keys=KEYS[:2], workdir=d, args=["--save-interval", "100ms"]) as px:
        aside = glob.glob(path + ".corrupt-*")
        assert len(aside) == 1, os.listdir(d)
        with open(aside[0]) as f:
            assert f.read() == '{"date": "2026-01-01", "counts": {tru'
        assert "corrupt" in px.log()
        assert px.generate()[0] == 200
        assert px.stop() == 0
        assert px.usage_json()["counts"] == {KEYS[0]: 1}


@test()
def usage_file_write_failure_recovers(fake):
    # The usage file's directory is missing: writes fail (logged once, the
    # proxy keeps serving and counting), and once it exists the counts
    # kept in memory reach the disk without a restart.
    import tempfile
    d = tempfile.mkdtemp(prefix="gkm-it-")
    sub = os.path.join(d, "state")
    path = os.path.join(sub, "key_usage.txt")
    with Proxy(fake.url, keys=KEYS[:2], workdir=d,
               args=["--usage-file", path, "--save-interval", "100ms"]) as px:
        for _ in range(3):
            assert px.generate()[0] == 200
        wait_for(lambda: "cannot write usage file" in px.log())
        time.sleep(0.5)  # several more failed ticks: one line per streak
        assert px.log().count("cannot write usage file") == 1, px.log()
        assert "No such file or directory" in px.log()
        assert px.generate()[0] == 200
        os.mkdir(sub)
        u = wait_for(lambda: os.path.exists(path) and px.usage_json_at(path))
        assert sum(u["counts"].values()) == 4, u
        wait_for(lambda: "written again" in px.log())
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        assert px.generate()[0] == 200
        assert px.stop() == 0
        assert sum(px.usage_json_at(path)["counts"].values()) == 5
        for k in KEYS[:2]:
            assert k not in px.log()


@test(timeout=60)
def write_failures_end_under_traffic_on_a_slow_disk(fake):
    # Saves take longer than the save interval (fsync 0.5 s, interval
    # 100 ms), so a newer snapshot is always queued behind the one being
    # written: the end of a failure streak must still be noticed.
    env = slow_disk_env(500)
    import tempfile
    d = tempfile.mkdtemp(prefix="gkm-it-")
    sub = os.path.join(d, "state")
    path = os.path.join(sub, "key_usage.txt")
    with Proxy(fake.url, keys=KEYS[:2], workdir=d, env_extra=env,
               args=["--usage-file", path, "--save-interval", "100ms"]) as px:
        assert px.generate()[0] == 200
        assert wait_for(lambda: "cannot write usage file" in px.log()), px.log()
        os.mkdir(sub)
        end = time.time() + 6
        while time.time() < end and "written again" not in px.log():
            assert px.generate()[0] == 200  # traffic all along
        assert "written again" in px.log(), px.log()
        assert px.stop(timeout=20) == 0


@test(timeout=60)
def slow_disk_never_stalls_requests(fake):
    # Every fsync takes 1.5 s (an LD_PRELOAD shim): a save is two of them.
    # The writer thread waits for them; requests must not.
    env = slow_disk_env(1500)
    with Proxy(fake.url, keys=KEYS[:2], args=["--save-interval", "100ms"],
               env_extra=env) as px:
        n, worst, first_file = 0, 0.0, None
        t0 = time.time()
        end = t0 + 4
        while time.time() < end:
            t = time.time()
            assert px.generate()[0] == 200
            worst = max(worst, time.time() - t)
            n += 1
            if first_file is None and os.path.exists(px.usage):
                first_file = time.time() - t0
        # Saves ran all along (each holding the writer 3 s); on the loop,
        # each would have stalled the requests behind it that long.
        assert first_file is not None, "no save finished in 4 s"
        assert first_file >= 1.4, "the shim did not slow fsync (%.2f s)" % first_file
        assert worst < 1.0, "a request waited %.2f s for the disk" % worst
        assert n >= 20, n
        assert px.stop(timeout=20) == 0
        assert sum(px.usage_json()["counts"].values()) == n


@test(timeout=60)
def stalled_disk_is_reported(fake):
    # A save that takes 6 s (two fsyncs of 3 s) is reported as a stalled
    # disk once it has run 5 s, and its return is logged; requests go on.
    env = slow_disk_env(3000)
    with Proxy(fake.url, keys=KEYS[:2], args=["--save-interval", "100ms"],
               env_extra=env) as px:
        assert px.generate()[0] == 200
        assert wait_for(lambda: "stalled disk" in px.log(), timeout=9), px.log()
        assert re.search(r"a write has been running for \d+ s", px.log()), px.log()
        assert px.generate()[0] == 200
        assert wait_for(lambda: "the stalled write returned" in px.log(), timeout=5), px.log()
        assert px.log().count("stalled disk") == 1
        assert px.stop(timeout=30) == 0
        assert sum(px.usage_json()["counts"].values()) == 2


@test(timeout=60)
def dead_disk_does_not_hold_the_stop(fake):
    # Every fsync takes 30 s: the final write cannot finish. The stop waits
    # for it until the end of the drain (at least 5 s), says so, and exits.
    env = slow_disk_env(30000)
    with Proxy(fake.url, keys=KEYS[:2],
               args=["--save-interval", "100ms", "--drain-timeout", "1s"],
               env_extra=env) as px:
        assert px.generate()[0] == 200
        time.sleep(1.5)  # the first save is now stuck in its fsync
        t = time.time()
        assert px.stop(timeout=20) == 0
        took = time.time() - t
        assert 4.5 <= took < 12, took
        log = px.log()
        assert "the last write did not finish within 5 s" in log, log
        assert "waiting up to 5 s for the usage file write" in log, log


@test(timeout=40)
def daily_reset_by_timer(fake):
    # A POSIX time zone whose midnight falls a few seconds from now.
    t = time.time() + 5
    off = int(t) % 86400
    tz = "TST+%02d:%02d:%02d" % (off // 3600, off % 3600 // 60, off % 60)
    with Proxy(fake.url, keys=KEYS[:2],
               args=["--reset-timezone", tz, "--save-interval", "100ms"]) as px:
        fake.config(rules=[{"key": KEYS[0], "respond": "quota_day", "times": 1}])
        assert px.generate()[0] == 200
        assert px.generate()[0] == 200
        u1 = wait_for(lambda: os.path.exists(px.usage) and px.usage_json())
        assert u1["exhausted_keys"] == {KEYS[0]: [MODEL]}, u1
        assert u1["counts"] == {KEYS[1]: 2}
        d1 = datetime.date.fromisoformat(u1["date"])
        # No request needed: the timer starts the new day.
        u2 = wait_for(lambda: px.usage_json()["date"] != u1["date"] and px.usage_json(),
                      timeout=12)
        assert datetime.date.fromisoformat(u2["date"]) == d1 + datetime.timedelta(days=1), u2
        assert u2["counts"] == {} and u2["exhausted_keys"] == {}, u2
        assert "usage counts reset" in px.log()
        fake.clear()
        assert px.generate()[0] == 200
        assert px.generate()[0] == 200
        assert KEYS[0] in [r["key"] for r in fake.requests()], "benched key back after reset"


if __name__ == "__main__":
    run()
