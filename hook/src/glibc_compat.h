/* Bind libc symbols to their oldest versions, so a libvgpu.so built on a new glibc still loads in
 * containers with an old one (glibc >= 2.17; Ubuntu 20.04 has 2.31, UBI 8 has 2.28). Without it
 * the library would need GLIBC_2.34 (pthread/dl functions moved into libc), and every process of
 * such a container would fail to preload it and run without limits. Included first into every
 * translation unit of the release build (build.sh); sanitizer builds keep their interceptors. */
#ifndef HAMI_GLIBC_COMPAT_H
#define HAMI_GLIBC_COMPAT_H
#if defined(__x86_64__)
#define HK_BASE "GLIBC_2.2.5"
#elif defined(__aarch64__)
#define HK_BASE "GLIBC_2.17"
#endif
#ifdef HK_BASE
#define HK_PIN(sym, ver) __asm__(".symver " #sym "," #sym "@" ver)
#if defined(__x86_64__)
#define HK_2_12 "GLIBC_2.12"
#else
#define HK_2_12 HK_BASE
#endif
HK_PIN(pthread_create, HK_BASE);
HK_PIN(pthread_attr_setstacksize, HK_BASE);
HK_PIN(pthread_mutexattr_init, HK_BASE);
HK_PIN(pthread_mutexattr_destroy, HK_BASE);
HK_PIN(pthread_mutexattr_setpshared, HK_BASE);
HK_PIN(pthread_mutexattr_setrobust, HK_2_12);
HK_PIN(pthread_mutex_consistent, HK_2_12);
HK_PIN(pthread_mutex_trylock, HK_BASE);
HK_PIN(pthread_setname_np, HK_2_12);
HK_PIN(pthread_sigmask, HK_BASE);
HK_PIN(pthread_key_create, HK_BASE);
HK_PIN(pthread_once, HK_BASE);
HK_PIN(pthread_setspecific, HK_BASE);
HK_PIN(sem_init, HK_BASE);
HK_PIN(sem_wait, HK_BASE);
HK_PIN(sem_post, HK_BASE);
HK_PIN(sem_destroy, HK_BASE);
HK_PIN(dlopen, HK_BASE);
HK_PIN(dlerror, HK_BASE);
HK_PIN(dlvsym, HK_BASE);
#endif
#endif
