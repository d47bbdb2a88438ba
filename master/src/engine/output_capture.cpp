#include "engine/output_capture.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include <spdlog/pattern_formatter.h>

namespace baetyl::master {

namespace fs = std::filesystem;

namespace {

// A line longer than this is written in pieces of this size.
constexpr std::size_t kMaxLine = 64 * 1024;
constexpr int kPollMillis = 100;

}  // namespace

InstanceLogFiles::InstanceLogFiles(fs::path dir, log::RotationPolicy policy)
    : dir_(std::move(dir)), policy_(policy) {}

std::shared_ptr<spdlog::logger> InstanceLogFiles::open(const std::string& instance) {
  std::lock_guard lock(mutex_);
  if (auto existing = open_[instance].lock()) return existing;
  fs::create_directories(dir_);
  auto sink = std::make_shared<log::RotatingFileSink>(dir_ / (instance + ".log"), policy_);
  sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
      kInstanceLogPattern, spdlog::pattern_time_type::utc, "\n"));
  auto logger = std::make_shared<spdlog::logger>(instance, std::move(sink));
  logger->set_level(spdlog::level::trace);
  open_[instance] = logger;
  return logger;
}

OutputCapture::OutputCapture(int read_fd, std::string instance,
                             std::shared_ptr<spdlog::logger> file, bool echo)
    : fd_(read_fd), instance_(std::move(instance)), file_(std::move(file)), echo_(echo) {
  ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  thread_ = std::thread([this] { run(); });
}

OutputCapture::~OutputCapture() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
}

void OutputCapture::run() {
  char buffer[16 * 1024];
  for (;;) {
    pollfd entry{fd_, POLLIN, 0};
    const int ready = ::poll(&entry, 1, kPollMillis);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) {
      if (stopping_) break;
      continue;
    }
    bool closed = false;
    for (;;) {
      const ssize_t n = ::read(fd_, buffer, sizeof buffer);
      if (n > 0) {
        pending_.append(buffer, static_cast<std::size_t>(n));
        emit(false);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      closed = n == 0 || (n < 0 && errno != EAGAIN);
      break;
    }
    file_->flush();
    if (closed) break;
  }
  emit(true);
  file_->flush();
}

void OutputCapture::emit(bool flush_partial) {
  std::size_t begin = 0;
  for (;;) {
    auto end = pending_.find('\n', begin);
    if (end == std::string::npos) {
      if (pending_.size() - begin >= kMaxLine) {
        end = begin + kMaxLine;
      } else if (flush_partial && begin < pending_.size()) {
        end = pending_.size();
      } else {
        break;
      }
    }
    std::string_view line(pending_.data() + begin, end - begin);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    file_->info("{}", line);
    if (echo_)
      std::fprintf(stderr, "%s | %.*s\n", instance_.c_str(), static_cast<int>(line.size()),
                   line.data());
    begin = end < pending_.size() && pending_[end] == '\n' ? end + 1 : end;
  }
  pending_.erase(0, begin);
}

}  // namespace baetyl::master
