#ifndef CASTLE_CARCHIVE_SHIM_H
#define CASTLE_CARCHIVE_SHIM_H
#include <archive.h>
#include <archive_entry.h>
#endif
