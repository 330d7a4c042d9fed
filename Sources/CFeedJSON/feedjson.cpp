#include "cfeedjson.h"
#include <simdjson.h>
extern "C" int hc_feedjson_version(void) { return 1; }
