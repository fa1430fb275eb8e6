// The calling thread's engine state, in C thread-local variables.
//
// Swift has no thread-local variables of its own: the engine's per-thread state was found
// through `pthread_getspecific`, a call of about 17 instructions plus a load of the key, made
// once or more by every operation (four times in a one-update `atomically`). Read here, from
// an inline function that the Swift compiler inlines like its own code, it is one load from
// the thread's block on ELF platforms (Linux); elsewhere (Darwin) the loader's accessor finds
// it. The thread-specific key stays as the state's owner: its destructor frees the state as the
// thread exits, after clearing this variable, and a thread whose variable is empty while the
// key still holds a state (the loader tore its thread-local storage down first) takes that
// one back (see `_ThreadContext.swift`). The list of `_DeferredRelease` is kept the same way.
//
// Internal to swift-stm: nothing here is API.

#ifndef STM_THREAD_LOCAL_H
#define STM_THREAD_LOCAL_H

// "initial-exec": the variable sits at a fixed offset from the thread pointer, found with one
// load of that offset, instead of a call to `__tls_get_addr`, which position-independent code
// makes otherwise. A library loaded with `dlopen` takes it from the few bytes the dynamic
// loader keeps spare for that; these are sixteen.
#if defined(__ELF__)
#define STM_TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define STM_TLS_MODEL
#endif

/// The calling thread's `_ThreadState`, or null before the thread has used the engine and
/// after its state was freed.
extern __thread void *_Nullable _stm_thread_state STM_TLS_MODEL;

static inline __attribute__((always_inline)) void *_Nullable _stm_current_thread_state(void) {
  return _stm_thread_state;
}

static inline __attribute__((always_inline)) void _stm_set_current_thread_state(void *_Nullable state) {
  _stm_thread_state = state;
}

/// The calling thread's list of objects being released one after another (STMCore's
/// `_DeferredRelease`), or null before the thread needed one and after it was freed.
extern __thread void *_Nullable _stm_deferred_releases STM_TLS_MODEL;

static inline __attribute__((always_inline)) void *_Nullable _stm_current_deferred_releases(void) {
  return _stm_deferred_releases;
}

static inline __attribute__((always_inline)) void _stm_set_current_deferred_releases(void *_Nullable list) {
  _stm_deferred_releases = list;
}

#endif
