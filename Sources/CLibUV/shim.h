#ifndef HEADCOUNT_CLIBUV_SHIM_H
#define HEADCOUNT_CLIBUV_SHIM_H
#include <uv.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sched.h>
#include <sys/prctl.h>

/* The calling thread's kernel id (for per-thread priority). */
static inline int hc_gettid(void) { return (int)syscall(SYS_gettid); }

/* Asks the scheduler (EEVDF, Linux 6.12+) for a short time slice for the calling thread: a
   thread with a shorter slice gets an earlier virtual deadline, so when it wakes or its turn
   comes it runs sooner, at the same CPU share. SCHED_OTHER policy, nice unchanged. 0 on
   success, else -1 and errno (older kernels ignore the field or refuse: harmless). */
struct hc_sched_attr {
    unsigned int size; unsigned int sched_policy; unsigned long long sched_flags;
    int sched_nice; unsigned int sched_priority;
    unsigned long long sched_runtime, sched_deadline, sched_period;
    unsigned int sched_util_min, sched_util_max;
};
static inline int hc_set_thread_slice(unsigned long long nanoseconds, int nice) {
    struct hc_sched_attr attr = { 0 };
    attr.size = sizeof(attr);
    attr.sched_policy = 0; /* SCHED_OTHER */
    attr.sched_nice = nice;
    attr.sched_runtime = nanoseconds;
    return (int)syscall(SYS_sched_setattr, 0, &attr, 0);
}

/* Names the calling thread as `top -H` and /proc/PID/task/TID/comm show it (15 bytes). */
static inline int hc_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }

/* Casts between libuv handle types that Swift cannot express directly. */
static inline uv_handle_t *hc_tcp_as_handle(uv_tcp_t *tcp) { return (uv_handle_t *)tcp; }
static inline uv_stream_t *hc_tcp_as_stream(uv_tcp_t *tcp) { return (uv_stream_t *)tcp; }
static inline uv_handle_t *hc_stream_as_handle(uv_stream_t *s) { return (uv_handle_t *)s; }
static inline uv_handle_t *hc_timer_as_handle(uv_timer_t *t) { return (uv_handle_t *)t; }
static inline uv_handle_t *hc_async_as_handle(uv_async_t *a) { return (uv_handle_t *)a; }
static inline uv_handle_t *hc_signal_as_handle(uv_signal_t *s) { return (uv_handle_t *)s; }
static inline uv_handle_t *hc_idle_as_handle(uv_idle_t *s) { return (uv_handle_t *)s; }
static inline uv_handle_t *hc_prepare_as_handle(uv_prepare_t *s) { return (uv_handle_t *)s; }
static inline uv_handle_t *hc_check_as_handle(uv_check_t *s) { return (uv_handle_t *)s; }
static inline uv_req_t *hc_work_as_req(uv_work_t *w) { return (uv_req_t *)w; }

/* uv_loop_configure is variadic, which Swift cannot call: turn on idle-time accounting. */
static inline int hc_loop_measure_idle_time(uv_loop_t *loop) { return uv_loop_configure(loop, UV_METRICS_IDLE_TIME); }

#endif
