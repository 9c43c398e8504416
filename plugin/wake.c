/*
 * wake.c — a signal that ends the broker thread's epoll wait (wake.h).
 *
 * The first real-time signal from SIGRTMAX down whose disposition is the default (nobody
 * handles it) is taken; its handler does nothing: interrupting epoll_wait is the point.
 * pthread_kill aims it at the broker thread (the thread that loaded the plugin), so the
 * plugin's other threads never see it.
 */
#include "wake.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

struct ota_wake {
    pthread_t broker;
    int sig;
    struct sigaction old;
};

static void on_wake(int sig)
{
    (void)sig;
}

ota_wake *ota_wake_new(void)
{
    ota_wake *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    struct sigaction sa = {.sa_handler = on_wake, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    for (int sig = SIGRTMAX; sig > SIGRTMAX - 8; sig--) {
        if (sigaction(sig, NULL, &w->old) == 0 && w->old.sa_handler == SIG_DFL &&
            !(w->old.sa_flags & SA_SIGINFO) && sigaction(sig, &sa, NULL) == 0) {
            w->sig = sig;
            w->broker = pthread_self();
            return w;
        }
    }
    free(w);
    return NULL;
}

void ota_wake_broker(void *arg)
{
    ota_wake *w = arg;
    pthread_kill(w->broker, w->sig);
}

void ota_wake_free(ota_wake *w)
{
    if (w == NULL)
        return;
    sigaction(w->sig, &w->old, NULL);
    free(w);
}
