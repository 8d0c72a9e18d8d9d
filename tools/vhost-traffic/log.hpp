#pragma once
// vhost-traffic's two kinds of output line, on stdout (the tests read it).

#include <cstdarg>
#include <cstdio>

namespace vhost_traffic {

inline void vlinef(const char* prefix, const char* fmt, va_list ap) {
    std::fprintf(stdout, "%s", prefix);
    std::vfprintf(stdout, fmt, ap);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

inline void errorf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void errorf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlinef("vhost-traffic: error: ", fmt, ap);
    va_end(ap);
}

inline void infof(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
inline void infof(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlinef("vhost-traffic: ", fmt, ap);
    va_end(ap);
}

} // namespace vhost_traffic
