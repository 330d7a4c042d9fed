// The target's functions are all `static inline` in include/cprefetch.h; SwiftPM needs a source file.
#include "cprefetch.h"
