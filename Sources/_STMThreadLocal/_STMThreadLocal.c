#include "_STMThreadLocal.h"

__thread void *_Nullable _stm_thread_state STM_TLS_MODEL = 0;
__thread void *_Nullable _stm_deferred_releases STM_TLS_MODEL = 0;
