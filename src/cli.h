/*
 * cli.h - the one-shot commands: `keys check` (probe every key with a
 * cheap call and print its state) and `usage` (today's usage table from the
 * usage file). Both read the key file and the usage file and change
 * neither.
 */
#ifndef GKM_CLI_H
#define GKM_CLI_H

struct gkm_config;
struct gkm_pool;
struct gkm_keyfile;
struct gkm_log;

/* A key pool over the keys of kf (in file order, with their projects).
 * Never NULL. */
struct gkm_pool *gkm_cli_pool(const struct gkm_keyfile *kf);

/* Each returns the process exit status. keys check: 0 when every key
 * answered as valid (or only quota-limited), 1 when any key is invalid,
 * suspended, leaked, denied or could not be reached, 2 on setup errors.
 * usage: 0, or 2 when the usage file cannot be read. */
int gkm_cli_keys_check(const struct gkm_config *cfg,
                       const struct gkm_keyfile *kf, struct gkm_log *log);
int gkm_cli_usage(const struct gkm_config *cfg, const struct gkm_keyfile *kf);

#endif
