/*
 * N WebSocket subscribers to castle serve's /v1/stream, for bin/bench's fan-out figure.
 *
 * Each connection subscribes to the trades and the book of one symbol (round robin over SYMBOLS,
 * comma-separated, by default S0,S1,S2,S3) and reads everything it is sent. Prints "subscribed N" on
 * stdout once every connection has its two answers, then, on SIGTERM or SIGINT, "messages M bytes B
 * closed C" (C: connections the server closed, e.g. as slow consumers) and exits.
 *
 * One thread, epoll, plain sockets: the client should cost the machine as little as it can, so that
 * the figure is the server's (the same client in Python, which this replaces, took 0.65 of a core at
 * 42k messages/s; this one 0.34). Only the framing of RFC 6455 a client needs: masked text frames
 * out (with a zero mask key, which the RFC allows), unmasked frames in, pings answered.
 *
 * Build: clang -O2 -o ws-subscribers bin/ws-subscribers.c   (bin/bench does)
 * Usage: ws-subscribers PORT [COUNT] [HOST] [SYMBOLS]
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { BUFFER = 1 << 20 };

struct subscriber {
    int fd;
    int upgraded;   /* the 101 and its headers are read */
    int answers;    /* "subscribed" answers seen */
    int done;       /* closed, by the server or by an error */
    size_t used;    /* bytes in buf */
    unsigned char *buf;
};

static volatile sig_atomic_t stopping = 0;
static unsigned long long messages = 0, bytes_in = 0;
static int closed = 0, ready = 0;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static void die(const char *what) {
    fprintf(stderr, "ws-subscribers: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Writes all of a small frame or request (the socket's buffer takes it: a few dozen bytes). */
static void send_all(int fd, const void *data, size_t length) {
    const unsigned char *p = data;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            die("write");
        }
        p += n;
        length -= (size_t)n;
    }
}

/* A masked client frame (mask 0: XOR with zero leaves the payload as it is, which RFC 6455 allows). */
static void send_frame(int fd, int opcode, const char *payload, size_t length) {
    unsigned char frame[256];
    frame[0] = (unsigned char)(0x80 | opcode);
    frame[1] = (unsigned char)(0x80 | length);
    memset(frame + 2, 0, 4);
    memcpy(frame + 6, payload, length);
    send_all(fd, frame, 6 + length);
}

static void subscribe(struct subscriber *s, const char *symbol) {
    char text[128];
    int n = snprintf(text, sizeof text, "{\"op\":\"subscribe\",\"channel\":\"trades\",\"symbol\":\"%s\"}", symbol);
    send_frame(s->fd, 0x1, text, (size_t)n);
    n = snprintf(text, sizeof text, "{\"op\":\"subscribe\",\"channel\":\"book\",\"symbol\":\"%s\"}", symbol);
    send_frame(s->fd, 0x1, text, (size_t)n);
}

static void finish(struct subscriber *s) {
    if (s->done) return;
    s->done = 1;
    closed++;
    close(s->fd);
}

/* Consumes the complete frames in the buffer; keeps a partial one for the next read. */
static void consume(struct subscriber *s) {
    size_t at = 0;
    if (!s->upgraded) {
        unsigned char *end = memmem(s->buf, s->used, "\r\n\r\n", 4);
        if (!end) return;
        if (s->used < 12 || memcmp(s->buf + 9, "101", 3) != 0) {
            fprintf(stderr, "ws-subscribers: upgrade refused: %.40s\n", (char *)s->buf);
            exit(1);
        }
        s->upgraded = 1;
        at = (size_t)(end - s->buf) + 4;
    }
    while (s->used - at >= 2) {
        unsigned char *f = s->buf + at;
        int opcode = f[0] & 0x0f;
        uint64_t length = f[1] & 0x7f;
        size_t header = 2;
        if (length == 126) {
            if (s->used - at < 4) break;
            length = ((uint64_t)f[2] << 8) | f[3];
            header = 4;
        } else if (length == 127) {
            if (s->used - at < 10) break;
            length = 0;
            for (int i = 0; i < 8; i++) length = (length << 8) | f[2 + i];
            header = 10;
        }
        if (s->used - at < header + length) break;
        const unsigned char *payload = f + header;
        if (opcode == 0x8) {
            finish(s);
            return;
        } else if (opcode == 0x9) {
            send_frame(s->fd, 0xA, (const char *)payload, (size_t)length);
        } else if (s->answers < 2 && memmem(payload, length, "\"op\":\"subscribed\"", 17)) {
            if (++s->answers == 2) ready++;
        } else {
            messages++;
            bytes_in += length;
        }
        at += header + length;
    }
    memmove(s->buf, s->buf + at, s->used - at);
    s->used -= at;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: ws-subscribers PORT [COUNT] [HOST] [SYMBOLS]\n");
        return 64;
    }
    int port = atoi(argv[1]);
    int count = argc > 2 ? atoi(argv[2]) : 1000;
    const char *host = argc > 3 ? argv[3] : "127.0.0.1";
    char *symbols[64];
    int symbolCount = 0;
    char *list = strdup(argc > 4 ? argv[4] : "S0,S1,S2,S3");
    for (char *symbol = strtok(list, ","); symbol; symbol = strtok(NULL, ",")) {
        if (symbolCount == 64) {
            fprintf(stderr, "ws-subscribers: more than 64 symbols\n");
            return 64;
        }
        symbols[symbolCount++] = symbol;
    }
    if (symbolCount == 0) {
        fprintf(stderr, "ws-subscribers: no symbols in \"%s\"\n", argv[4]);
        return 64;
    }

    struct sigaction action = {0};
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    int epoll = epoll_create1(0);
    if (epoll < 0) die("epoll_create1");
    struct subscriber *subs = calloc((size_t)count, sizeof *subs);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "ws-subscribers: not an IPv4 address: %s\n", host);
        return 64;
    }
    for (int i = 0; i < count; i++) {
        struct subscriber *s = &subs[i];
        s->buf = malloc(BUFFER);
        s->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (s->fd < 0) die("socket");
        if (connect(s->fd, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char request[256];
        int n = snprintf(request, sizeof request,
                         "GET /v1/stream HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                         host, port);
        send_all(s->fd, request, (size_t)n);
        subscribe(s, symbols[i % symbolCount]);
        struct epoll_event event = {.events = EPOLLIN, .data.ptr = s};
        if (epoll_ctl(epoll, EPOLL_CTL_ADD, s->fd, &event) != 0) die("epoll_ctl");
    }
    int announced = 0;
    struct epoll_event events[256];
    while (!stopping) {
        int n = epoll_wait(epoll, events, 256, 200);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int e = 0; e < n; e++) {
            struct subscriber *s = events[e].data.ptr;
            if (s->done) continue;
            ssize_t got = read(s->fd, s->buf + s->used, BUFFER - s->used);
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (got <= 0) {
                finish(s);
                continue;
            }
            s->used += (size_t)got;
            consume(s);
            if (!s->done && s->used == BUFFER) {
                fprintf(stderr, "ws-subscribers: a frame larger than %d bytes\n", BUFFER);
                return 1;
            }
        }
        if (!announced && ready == count) {
            printf("subscribed %d\n", count);
            fflush(stdout);
            announced = 1;
        }
    }
    printf("messages %llu bytes %llu closed %d\n", messages, bytes_in, closed);
    fflush(stdout);
    return 0;
}
