#include <sqlite3.h>

/* sqlite3_config is variadic, which Swift cannot call: the settings castle uses, as plain functions. */
static inline int sqlite3_config_memstatus_off(void) { return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }
