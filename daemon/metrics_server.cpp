#include "daemon/metrics_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "daemon/metrics_text.hpp"

namespace vhostd::daemon {

namespace {

std::string response(const char* status, const std::string& content_type, const std::string& body) {
    return fmt::format("HTTP/1.0 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                       "Connection: close\r\n\r\n{}",
                       status, content_type, body.size(), body);
}

std::string plain(const char* status, const std::string& text) {
    return response(status, "text/plain; charset=utf-8", text + "\n");
}

// End of the request head: the blank line (CRLF CRLF, or bare LF LF).
std::optional<size_t> head_end(std::string_view buffered) {
    const size_t crlf = buffered.find("\r\n\r\n");
    const size_t lf = buffered.find("\n\n");
    if (crlf == std::string_view::npos && lf == std::string_view::npos) {
        return std::nullopt;
    }
    if (crlf != std::string_view::npos && (lf == std::string_view::npos || crlf < lf)) {
        return crlf + 4;
    }
    return lf + 2;
}

} // namespace

// RFC 1945 §5.1: Request-Line = Method SP Request-URI SP HTTP-Version.
std::string http_response(std::string_view head, const std::function<Model()>& model) {
    const size_t eol = head.find('\n');
    std::string_view line = head.substr(0, eol);
    if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
    }
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
        line.substr(sp2 + 1).rfind("HTTP/", 0) != 0) {
        return plain("400 Bad Request", "bad request line");
    }
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (const size_t q = target.find('?'); q != std::string_view::npos) {
        target = target.substr(0, q);
    }
    if (method != "GET") {
        return plain("405 Method Not Allowed", "only GET is supported");
    }
    if (target != "/metrics") {
        return plain("404 Not Found", "not found; metrics are at /metrics");
    }
    return response("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_metrics(model()));
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::create(EventLoop& loop,
                                                             const config::MetricsListen& listen,
                                                             std::function<Model()> model) {
    std::unique_ptr<MetricsServer> self(new MetricsServer(std::move(model)));
    const std::string where = listen.ipv6 ? fmt::format("[{}]:{}", listen.host, listen.port)
                                          : fmt::format("{}:{}", listen.host, listen.port);
    const int family = listen.ipv6 ? AF_INET6 : AF_INET;
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return make_error(fmt::format("metrics.listen {}: socket: {}", where, std::strerror(errno)));
    }
    const int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_storage addr{};
    socklen_t len = 0;
    if (listen.ipv6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(listen.port);
        ::inet_pton(AF_INET6, listen.host.c_str(), &a->sin6_addr);
        len = sizeof(*a);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&addr);
        a->sin_family = AF_INET;
        a->sin_port = htons(listen.port);
        ::inet_pton(AF_INET, listen.host.c_str(), &a->sin_addr);
        len = sizeof(*a);
    }
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
        return make_error(fmt::format("metrics.listen {}: bind: {}", where, std::strerror(errno)));
    }
    if (::listen(fd.get(), 16) != 0) {
        return make_error(fmt::format("metrics.listen {}: listen: {}", where, std::strerror(errno)));
    }
    MetricsServer* raw = self.get();
    auto framer = [raw](std::string_view buffered) -> std::optional<StreamServer::Reply> {
        auto end = head_end(buffered);
        if (!end) {
            return std::nullopt;
        }
        return StreamServer::Reply{*end, http_response(buffered.substr(0, *end), raw->model_), true};
    };
    auto overflow = [](size_t max) {
        return plain("431 Request Header Fields Too Large",
                     fmt::format("request head longer than {} bytes", max));
    };
    StreamServer::Limits limits;
    limits.max_request = kMaxHttpRequest;
    limits.max_clients = 16;
    self->server_ = std::make_unique<StreamServer>(loop, "metrics", std::move(fd), limits, framer,
                                                   overflow);
    self->server_->start();
    spdlog::info("metrics: serving http://{}/metrics", where);
    return self;
}

MetricsServer::~MetricsServer() { shutdown(); }

void MetricsServer::shutdown() {
    if (server_) {
        server_->shutdown();
        server_.reset();
    }
}

} // namespace vhostd::daemon
