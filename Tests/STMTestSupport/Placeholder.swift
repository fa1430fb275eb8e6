import STM
