#include "cloud_http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>

namespace baetyl::agent {
namespace {

namespace fs = std::filesystem;

// A report's answer is a short acknowledgement; a longer one is not read into memory.
constexpr std::size_t kMaxAnswer = 1024 * 1024;

struct EasyCleanup {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
using Easy = std::unique_ptr<CURL, EasyCleanup>;

struct ListCleanup {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using HeaderList = std::unique_ptr<curl_slist, ListCleanup>;

struct FileClose {
  void operator()(std::FILE* file) const { std::fclose(file); }
};

// One transfer: a handle with the options every exchange with the cloud shares, and the message
// of its failure.
class Transfer {
 public:
  Transfer(const CloudHttpOptions& options, const char* method, const std::string& url)
      : method_(method), url_(url), easy_(curl_easy_init()) {
    if (!easy_) throw CloudHttpError(what() + ": cannot create a libcurl handle", 0);
    set(CURLOPT_ERRORBUFFER, error_);
    set(CURLOPT_URL, url.c_str());
    set(CURLOPT_NOSIGNAL, 1L);  // the agent's threads each run transfers; no SIGALRM
    set(CURLOPT_PROTOCOLS_STR, "https");
    set(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    set(CURLOPT_FOLLOWLOCATION, 1L);
    set(CURLOPT_MAXREDIRS, CloudHttp::kMaxRedirects);
    // long is 32 bits on armhf: about 24 days at most.
    const long timeout_ms = static_cast<long>(std::min<std::chrono::milliseconds::rep>(
        options.timeout.count(), std::numeric_limits<long>::max()));
    set(CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    set(CURLOPT_TIMEOUT_MS, timeout_ms);
    set(CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    set(CURLOPT_SSL_VERIFYPEER, options.insecure_skip_verify ? 0L : 1L);
    set(CURLOPT_SSL_VERIFYHOST, options.insecure_skip_verify ? 0L : 2L);
    if (!options.ca.empty()) {
      // Only that CA: Debian's libcurl would also trust every CA of /etc/ssl/certs (its
      // built-in CA path) next to the file.
      set(CURLOPT_CAINFO, options.ca.c_str());
      set(CURLOPT_CAPATH, static_cast<const char*>(nullptr));
    }
    if (!options.cert.empty()) set(CURLOPT_SSLCERT, options.cert.c_str());
    if (!options.key.empty()) set(CURLOPT_SSLKEY, options.key.c_str());
    set(CURLOPT_USERAGENT, "baetyl-agent");
  }

  template <typename T>
  void set(CURLoption option, T value) {
    if (const CURLcode code = curl_easy_setopt(easy_.get(), option, value); code != CURLE_OK) {
      throw CloudHttpError(what() + ": libcurl refused an option: " + curl_easy_strerror(code), 0);
    }
  }

  CURL* handle() const { return easy_.get(); }
  std::string what() const { return method_ + " " + url_; }

  long status() const {
    long status = 0;
    curl_easy_getinfo(easy_.get(), CURLINFO_RESPONSE_CODE, &status);
    return status;
  }

  CURLcode perform() {
    error_[0] = '\0';
    return curl_easy_perform(easy_.get());
  }

  // "<METHOD> <url>: <curl's reason> (<the error buffer>)", the reason said once.
  CloudHttpError failure(CURLcode code) const {
    const std::string reason = curl_easy_strerror(code);
    std::string details = error_;
    while (!details.empty() && (details.back() == '\n' || details.back() == ' ')) {
      details.pop_back();
    }
    if (details.ends_with(": " + reason)) details.resize(details.size() - reason.size() - 2);
    std::string message = what() + ": " + reason;
    if (!details.empty() && details != reason) message += " (" + details + ")";
    return CloudHttpError(message, 0);
  }

  CloudHttpError bad_status(long status) const {
    return CloudHttpError(what() + " answered HTTP " + std::to_string(status), status);
  }

 private:
  std::string method_;
  std::string url_;
  Easy easy_;
  char error_[CURL_ERROR_SIZE] = {};
};

struct AnswerSink {
  std::string body;
  bool too_long = false;
};

std::size_t write_answer(char* data, std::size_t size, std::size_t count, void* user) {
  auto& sink = *static_cast<AnswerSink*>(user);
  const std::size_t bytes = size * count;
  if (sink.body.size() + bytes > kMaxAnswer) {
    sink.too_long = true;
    return 0;
  }
  sink.body.append(data, bytes);
  return bytes;
}

// The body of a download: into the file while the status is a success, counted against the
// limit; an error page is not kept.
struct FileSink {
  CURL* easy = nullptr;
  std::FILE* file = nullptr;
  std::uint64_t max_bytes = 0;
  std::uint64_t written = 0;
  bool over_limit = false;
  int write_errno = 0;
};

std::size_t write_file(char* data, std::size_t size, std::size_t count, void* user) {
  auto& sink = *static_cast<FileSink*>(user);
  const std::size_t bytes = size * count;
  long status = 0;
  curl_easy_getinfo(sink.easy, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status >= 300) return bytes;
  if (bytes > sink.max_bytes - sink.written) {
    sink.over_limit = true;
    return 0;
  }
  if (std::fwrite(data, 1, bytes, sink.file) != bytes) {
    sink.write_errno = errno;
    return 0;
  }
  sink.written += bytes;
  return bytes;
}

}  // namespace

void CloudHttp::init_global() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT); code != CURLE_OK) {
      throw std::runtime_error(std::string("libcurl cannot be initialised: ") +
                               curl_easy_strerror(code));
    }
  });
}

CloudHttp::CloudHttp(CloudHttpOptions options) : options_(std::move(options)) { init_global(); }

CloudResponse CloudHttp::post_json(const std::string& url, const std::string& body,
                                   const std::vector<std::string>& headers) const {
  Transfer transfer(options_, "POST", url);
  HeaderList list;
  // No "Expect: 100-continue": the body goes at once.
  for (const std::string& header :
       {std::string("Content-Type: application/json"), std::string("Expect:")}) {
    list.reset(curl_slist_append(list.release(), header.c_str()));
  }
  for (const auto& header : headers) list.reset(curl_slist_append(list.release(), header.c_str()));
  if (!list) throw CloudHttpError(transfer.what() + ": out of memory for its headers", 0);
  transfer.set(CURLOPT_HTTPHEADER, list.get());
  transfer.set(CURLOPT_POST, 1L);
  transfer.set(CURLOPT_POSTFIELDS, body.data());
  transfer.set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  // A redirected report is still a POST of the report, whatever the 3xx code.
  transfer.set(CURLOPT_POSTREDIR, static_cast<long>(CURL_REDIR_POST_ALL));
  AnswerSink answer;
  transfer.set(CURLOPT_WRITEFUNCTION, write_answer);
  transfer.set(CURLOPT_WRITEDATA, &answer);

  if (const CURLcode code = transfer.perform(); code != CURLE_OK) {
    if (answer.too_long) {
      throw CloudHttpError(
          transfer.what() + ": the answer is longer than " + std::to_string(kMaxAnswer) + " bytes",
          transfer.status());
    }
    throw transfer.failure(code);
  }
  const long status = transfer.status();
  if (status >= 400) throw transfer.bad_status(status);
  return CloudResponse{status, std::move(answer.body)};
}

void CloudHttp::download(const std::string& url, const fs::path& file,
                         std::uint64_t max_bytes) const {
  Transfer transfer(options_, "GET", url);
  std::unique_ptr<std::FILE, FileClose> out(std::fopen(file.c_str(), "wb"));
  if (!out) {
    throw CloudHttpError(
        transfer.what() + ": cannot write " + file.string() + ": " + std::strerror(errno), 0);
  }
  // Removes the file unless the download completes.
  struct Removal {
    const fs::path& file;
    bool keep = false;
    ~Removal() {
      if (!keep) {
        std::error_code ec;
        fs::remove(file, ec);
      }
    }
  } removal{file};

  FileSink sink{transfer.handle(), out.get(), max_bytes};
  // Stops before the body when Content-Length announces too much; write_file counts the rest.
  transfer.set(CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
  transfer.set(CURLOPT_WRITEFUNCTION, write_file);
  transfer.set(CURLOPT_WRITEDATA, &sink);

  const CURLcode code = transfer.perform();
  if (code == CURLE_FILESIZE_EXCEEDED || sink.over_limit) {
    throw CloudHttpError(transfer.what() +
                             ": Maximum file size exceeded (the body is larger than " +
                             std::to_string(max_bytes) + " bytes)",
                         0);
  }
  if (sink.write_errno != 0) {
    throw CloudHttpError(transfer.what() + ": cannot write " + file.string() + ": " +
                             std::strerror(sink.write_errno),
                         0);
  }
  if (code != CURLE_OK) throw transfer.failure(code);
  const long status = transfer.status();
  if (status < 200 || status >= 300) throw transfer.bad_status(status);
  if (std::fclose(out.release()) != 0) {
    throw CloudHttpError(
        transfer.what() + ": cannot write " + file.string() + ": " + std::strerror(errno), 0);
  }
  removal.keep = true;
}

}  // namespace baetyl::agent
