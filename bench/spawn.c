/* spawn: run one program and report its cost, for bench.py.
 *
 * usage: spawn PROGRAM [ARG...]   (stdin, stdout, stderr inherited)
 * Writes "WALL_NS CPU_NS MAXRSS_KIB STATUS\n" to fd 3.
 *
 * Why not os.wait4 from Python directly: at execve Linux records the old
 * address space's high-water RSS into the process's ru_maxrss, so a program
 * spawned from the Python interpreter "peaks" at Python's size (~10-20 MiB).
 * Spawned from this small process, the floor is this process's size (~1 MiB).
 * Timing here also leaves out the interpreter's own jitter.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long ns(const struct timespec *t) { return t->tv_sec * 1000000000LL + t->tv_nsec; }

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	int wstatus, status;
	pid_t pid;

	if (argc < 2)
		return 64;
	if (fcntl(3, F_SETFD, FD_CLOEXEC) == -1)
		return 64;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid = vfork();
	if (pid == -1)
		return 71;
	if (pid == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	if (wait4(pid, &wstatus, 0, &ru) == -1)
		return 71;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : -WTERMSIG(wstatus);
	dprintf(3, "%lld %lld %ld %d\n", ns(&t1) - ns(&t0),
		(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL
			+ (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL,
		ru.ru_maxrss, status);
	return 0;
}
