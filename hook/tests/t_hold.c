/* Hold MIB on device 0 while running a command (the region reader), then exit without freeing:
 *   t_hold MIB COMMAND...   exit status is the command's. */
#include "t_common.h"

#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    CHECK(argc >= 3, "usage: t_hold MIB COMMAND...");
    use_device(0);
    CUdeviceptr p;
    CU_OK(cuMemAlloc_v2(&p, strtoull(argv[1], NULL, 10) * MIB));
    fflush(stdout);
    pid_t c = fork();
    CHECK(c >= 0, "fork");
    if (c == 0) {
        unsetenv("LD_PRELOAD");
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int st;
    CHECK(waitpid(c, &st, 0) == c, "waitpid");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
