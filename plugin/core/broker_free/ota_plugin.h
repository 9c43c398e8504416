/*
 * ota_plugin.h — a guard, not the real header: plugin/core/ is built with this folder first on its
 * include path (core/CMakeLists.txt), so any file of the broker-free core that reaches the
 * broker's or the plugin glue's header, directly or through another header, fails to build.
 */
#error "plugin/core/ is broker-free: it must not include ota_plugin.h"
