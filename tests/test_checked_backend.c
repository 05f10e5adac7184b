/* test_checked_backend.c - the device-contract checker (backend/checked.h)
 * catches what it must and nothing else: with DINOX_CHECK_DEVICE_POINTERS=1,
 * an op given host memory, a freed buffer or host_alloc staging memory aborts
 * naming the op and the argument; backend memory (also an interior pointer),
 * NULL optional arguments and the (host) scalar outputs pass. Each violation
 * runs in a child process. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/dx_loss_ops.h"
#include "backend/registry.h"
#include "dx_test.h"

typedef void (*misuse_fn)(dx_backend *be, float *dev);

static void use_host(dx_backend *be, float *dev) {
    float host[16] = {0};
    be->ops->axpy(be, dev, 1.0f, host, 16);
}
static void use_freed(dx_backend *be, float *dev) {
    float *d = be->ops->alloc(be, 64 * sizeof(float));
    be->ops->free(be, d);
    be->ops->scale(be, d, 2.0f, 64);
}
static void use_staging(dx_backend *be, float *dev) {
    float *h = be->ops->host_alloc(be, 64 * sizeof(float));
    be->ops->gelu_forward(be, dev, h, 16);
}
static void use_host_loss(dx_backend *be, float *dev) {
    int32_t nn[4];
    be->loss->koleo_forward(be, nn, dev, 4, 4);
}
static void double_free(dx_backend *be, float *dev) {
    be->ops->free(be, dev + 1);
}

/* runs f in a child; returns 1 if it aborted with a message containing want */
static int aborts_with(misuse_fn f, const char *want) {
    int fd[2];
    if (pipe(fd)) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        dx_backend *be;
        dx_err err = {0};
        if (dx_backend_create(&be, &(dx_backend_params){.nthreads = 1}, &err)) _exit(3);
        float *dev = be->ops->alloc(be, 64 * sizeof(float));
        f(be, dev);
        _exit(0);
    }
    close(fd[1]);
    char buf[1024] = {0};
    size_t got = 0;
    ssize_t r;
    while (got < sizeof buf - 1 && (r = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, want) != NULL;
    if (!ok) fprintf(stderr, "  child status %d, stderr: %s\n", status, buf);
    return ok;
}

int main(void) {
    setenv("DINOX_CHECK_DEVICE_POINTERS", "1", 1);
    CHECK(aborts_with(use_host, "axpy: argument 'x'"), "host memory passed to axpy is not caught");
    CHECK(aborts_with(use_freed, "scale: argument 'x'"), "a freed buffer passed to scale is not caught");
    CHECK(aborts_with(use_staging, "gelu_forward: argument 'x'"), "host_alloc memory passed to an op is not caught");
    CHECK(aborts_with(use_host_loss, "koleo_forward: argument 'nn'"), "host memory passed to a loss op is not caught");
    CHECK(aborts_with(double_free, "free("), "freeing an interior pointer is not caught");

    /* what is legal passes, and gives the same numbers as the plain backend */
    dx_backend *be, *plain;
    dx_err err = {0};
    CHECK(dx_backend_create(&be, &(dx_backend_params){.nthreads = 1}, &err) == DX_OK, "create: %s", err.msg);
    CHECK(!strcmp(be->ops->name, "checked"), "the environment variable did not wrap the backend (%s)", be->ops->name);
    unsetenv("DINOX_CHECK_DEVICE_POINTERS");
    CHECK(dx_backend_create(&plain, &(dx_backend_params){.nthreads = 1}, &err) == DX_OK, "create: %s", err.msg);
    CHECK(strcmp(plain->ops->name, "checked") != 0, "wrapped without the environment variable");
    float host[64], a[64], b[64];
    for (int i = 0; i < 64; i++) host[i] = (float)i / 7.0f - 3.0f;
    dx_backend *bs[2] = {be, plain};
    float *outs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        dx_backend *x = bs[k];
        float *d = x->ops->alloc(x, sizeof host), *o = x->ops->alloc(x, sizeof host);
        x->ops->upload(x, d, host, sizeof host);
        x->ops->gelu_forward(x, o + 8, d + 8, 48); /* interior pointers */
        x->ops->bias_forward(x, o, d, NULL, 4, 8); /* NULL optional mask */
        double st[DX_PROB_STATS];
        x->loss->prob_stats(x, st, d, 8, 8, 1.0f, 1); /* host scalar output */
        x->ops->download(x, outs[k], o, sizeof host);
        x->ops->free(x, d);
        x->ops->free(x, o);
    }
    CHECK(!memcmp(a, b, sizeof a), "the checked backend changed the results");
    dx_backend_destroy(be);
    dx_backend_destroy(plain);
    return dx_test_summary();
}
