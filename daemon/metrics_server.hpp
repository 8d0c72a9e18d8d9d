#pragma once
// The Prometheus endpoint (`metrics.listen`): a plain HTTP/1.0-style
// responder on the control thread's io_uring loop. GET /metrics answers with
// the text format (metrics_text.hpp); any other path is 404, any other
// method 405. Requests are bounded (8 KiB of headers) and every connection
// is closed after its response.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "daemon/event_loop.hpp"
#include "daemon/introspection.hpp"
#include "daemon/stream_server.hpp"
#include "protocol/result.hpp"

namespace vhostd::daemon {

inline constexpr size_t kMaxHttpRequest = 8 * 1024;

// The HTTP answer to a complete request head (request line + headers, up to
// and including the blank line). Exposed for tests.
[[nodiscard]] std::string http_response(std::string_view head, const std::function<Model()>& model);

class MetricsServer {
public:
    static Result<std::unique_ptr<MetricsServer>> create(EventLoop& loop,
                                                         const config::MetricsListen& listen,
                                                         std::function<Model()> model);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    void shutdown();

private:
    explicit MetricsServer(std::function<Model()> model) : model_(std::move(model)) {}

    std::function<Model()> model_;
    std::unique_ptr<StreamServer> server_;
};

} // namespace vhostd::daemon
