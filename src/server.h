/*
 * server.h - the HTTP front: http.c set up, limits and routing. The only
 * file that knows the route table.
 */
#ifndef GKM_SERVER_H
#define GKM_SERVER_H

#include <stddef.h>

struct gkm_app;

/* Create app->http on app->base, apply limits from the config, bind the
 * listen address. On success writes the bound "host:port" (with the real
 * port when 0 was asked) to bound and returns 0; -1 with err otherwise. */
int gkm_server_start(struct gkm_app *app, char *bound, size_t boundlen,
                     char *err, size_t errlen);
/* Stop accepting new connections; idle ones close, the others after
 * their current reply. */
void gkm_server_stop_accepting(struct gkm_app *app);
/* Close everything and free app->http. */
void gkm_server_free(struct gkm_app *app);

#endif
