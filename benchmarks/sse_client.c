/* A compiled load client for paced streams: every content chunk of many concurrent SSE streams
 * timed as it is read, at a few microseconds of CPU a read, so that the client is never what a
 * capacity figure measures (benchmarks/harness.py builds it with the C compiler and runs it).
 *
 *     sse_client HOST PORT STARTS_FILE REQUEST_FILE OUTPUT_FILE TIMEOUT_SECONDS
 *
 * Opens one connection per line of STARTS_FILE (each a number of seconds, in ascending order),
 * then writes the request in REQUEST_FILE on each at its start after the first write (a
 * timerfd: nanosecond deadlines), and reads every connection until the server closes
 * it (the requests say "Connection: close") or TIMEOUT_SECONDS pass. Each read is timed once
 * (CLOCK_MONOTONIC) and its occurrences of "content": (one per content chunk, a match cut in two
 * by a read included) take that time. OUTPUT_FILE gets one line "cpu SECONDS wall SECONDS", one
 * line "late" with each write's lateness behind its due time (the client's own lag), then one
 * line per stream: "SENT_AT COUNT TIME..." (seconds on the monotonic clock).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define NEEDLE "\"content\":"
#define NEEDLE_LEN (sizeof(NEEDLE) - 1)
#define READ_BYTES 65536
#define TIMER_ID UINT32_MAX

typedef struct {
    int fd;
    int open;
    double sent_at;
    double *times;
    size_t count, capacity;
    char tail[NEEDLE_LEN];
    size_t tail_len;
} stream_t;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void fail(const char *what) {
    perror(what);
    exit(1);
}

static void note(stream_t *s, double at) {
    if (s->count == s->capacity) {
        s->capacity = s->capacity ? s->capacity * 2 : 512;
        s->times = realloc(s->times, s->capacity * sizeof(double));
        if (!s->times) fail("realloc");
    }
    s->times[s->count++] = at;
}

/* Count the content chunks in what was just read (after the tail kept from the read before). */
static void scan(stream_t *s, char *buffer, size_t length, double at) {
    size_t start = 0, kept_from = 0;
    char *found;
    while ((found = memmem(buffer + start, length - start, NEEDLE, NEEDLE_LEN)) != NULL) {
        note(s, at);
        start = (size_t)(found - buffer) + NEEDLE_LEN;
        kept_from = start;
    }
    /* keep the last bytes that could begin a match, none of an already counted one */
    size_t from = length > NEEDLE_LEN - 1 ? length - (NEEDLE_LEN - 1) : 0;
    if (from < kept_from) from = kept_from;
    s->tail_len = length - from;
    memcpy(s->tail, buffer + from, s->tail_len);
}

static void arm(int timer, double at) {
    struct itimerspec spec = {0};
    spec.it_value.tv_sec = (time_t)at;
    spec.it_value.tv_nsec = (long)((at - (double)(time_t)at) * 1e9);
    if (spec.it_value.tv_sec == 0 && spec.it_value.tv_nsec == 0) spec.it_value.tv_nsec = 1;
    if (timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, NULL) < 0) fail("timerfd_settime");
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s HOST PORT STARTS_FILE REQUEST_FILE OUTPUT_FILE TIMEOUT_SECONDS\n", argv[0]);
        return 2;
    }
    const char *host = argv[1];
    int port = atoi(argv[2]);
    double timeout = atof(argv[6]);

    FILE *file = fopen(argv[3], "r");
    if (!file) fail("starts file");
    size_t streams = 0, room = 1024;
    double *starts = malloc(room * sizeof(double)), start;
    while (starts && fscanf(file, "%lf", &start) == 1) {
        if (streams == room) starts = realloc(starts, (room *= 2) * sizeof(double));
        if (!starts) break;
        starts[streams++] = start;
    }
    fclose(file);
    if (!starts || streams == 0) fail("starts file: no starts");

    file = fopen(argv[4], "rb");
    if (!file) fail("request file");
    static char request[65536];
    size_t request_len = fread(request, 1, sizeof(request), file);
    fclose(file);

    stream_t *all = calloc(streams, sizeof(stream_t));
    double *late = calloc(streams, sizeof(double));
    int ep = epoll_create1(0);
    if (!all || !late || ep < 0) fail("setup");
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) fail("address");
    for (size_t i = 0; i < streams; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        if (fd < 0) fail("socket");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(fd, (struct sockaddr *)&address, sizeof(address)) < 0) fail("connect");
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &event) < 0) fail("epoll_ctl");
        all[i].fd = fd;
        all[i].open = 1;
    }
    struct timespec settle = {0, 50 * 1000 * 1000}; /* the server has accepted them all */
    nanosleep(&settle, NULL);

    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event timer_event = {.events = EPOLLIN, .data.u32 = TIMER_ID};
    if (timer < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, timer, &timer_event) < 0) fail("timerfd");
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    double started = now(), deadline = started + timeout;
    size_t written = 0, remaining = streams;
    arm(timer, started + starts[0]);

    static char buffer[NEEDLE_LEN + READ_BYTES];
    struct epoll_event events[1024];
    while (remaining > 0 && now() < deadline) {
        int ready = epoll_wait(ep, events, 1024, 100);
        if (ready < 0 && errno != EINTR) fail("epoll_wait");
        for (int e = 0; e < ready; e++) {
            uint32_t id = events[e].data.u32;
            if (id == TIMER_ID) {
                uint64_t expirations;
                if (read(timer, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) fail("read timerfd");
                double at = now();
                while (written < streams && at >= started + starts[written]) {
                    stream_t *s = &all[written];
                    s->sent_at = now();
                    if (write(s->fd, request, request_len) != (ssize_t)request_len) fail("write");
                    late[written] = s->sent_at - (started + starts[written]);
                    written++;
                }
                if (written < streams) arm(timer, started + starts[written]);
                continue;
            }
            stream_t *s = &all[id];
            while (s->open) {
                memcpy(buffer, s->tail, s->tail_len);
                ssize_t got = read(s->fd, buffer + s->tail_len, READ_BYTES);
                if (got > 0) {
                    scan(s, buffer, s->tail_len + (size_t)got, now());
                } else if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                } else { /* the server closed it (or reset it) */
                    s->open = 0;
                    remaining--;
                    close(s->fd);
                }
            }
        }
    }
    double wall = now() - started;
    getrusage(RUSAGE_SELF, &after);
    double cpu = (double)(after.ru_utime.tv_sec - before.ru_utime.tv_sec) +
                 (double)(after.ru_utime.tv_usec - before.ru_utime.tv_usec) * 1e-6 +
                 (double)(after.ru_stime.tv_sec - before.ru_stime.tv_sec) +
                 (double)(after.ru_stime.tv_usec - before.ru_stime.tv_usec) * 1e-6;

    FILE *out = fopen(argv[5], "w");
    if (!out) fail("output file");
    fprintf(out, "cpu %.6f wall %.6f\nlate", cpu, wall);
    for (size_t i = 0; i < written; i++) fprintf(out, " %.9f", late[i]);
    fprintf(out, "\n");
    for (size_t i = 0; i < streams; i++) {
        fprintf(out, "%.9f %zu", all[i].sent_at, all[i].count);
        for (size_t k = 0; k < all[i].count; k++) fprintf(out, " %.9f", all[i].times[k]);
        fprintf(out, "\n");
    }
    fclose(out);
    return remaining > 0 ? 3 : 0;
}
