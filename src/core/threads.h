/* threads.h: the one thread knob. Sets OpenMP's team size and OpenBLAS's
 * thread count together so the two never oversubscribe the cores. */
#ifndef LOOM_CORE_THREADS_H
#define LOOM_CORE_THREADS_H

/* n <= 0 means "all cores". Returns the count in effect. */
int  loom_threads_set(int n);
int  loom_threads_get(void);

#endif
