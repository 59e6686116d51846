#include "run_tool.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char *drain(int fd) {
  size_t len = 0, cap = 1 << 14;
  char *out = malloc(cap);
  ssize_t k;
  while (out && (k = read(fd, out + len, cap - 1 - len)) > 0) {
    len += (size_t)k;
    if (len + 1 == cap) {
      char *o2 = realloc(out, cap *= 2);
      if (!o2)
        free(out);
      out = o2;
    }
  }
  if (out)
    out[len] = 0;
  return out;
}

int xk_spawn(char *const argv[], char **output, xk_diag *d) {
  int fds[2];
  if (pipe(fds))
    return xk_diag_set(d, "%s: pipe: %s", argv[0], strerror(errno));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawn_file_actions_addclose(&fa, fds[0]);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc) {
    close(fds[0]);
    return xk_diag_set(d, "cannot run %s: %s", argv[0], strerror(rc));
  }
  char *out = drain(fds[0]);
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
    ;
  if (!out)
    return xk_diag_set(d, "%s: out of memory reading its output", argv[0]);
  if (!WIFEXITED(status)) {
    free(out);
    return xk_diag_set(d, "%s was killed by signal %d", argv[0],
                       WTERMSIG(status));
  }
  *output = out;
  return WEXITSTATUS(status);
}
