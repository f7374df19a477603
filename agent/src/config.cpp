// SPDX-License-Identifier: MIT
// Agent configuration file: load, environment overlay, atomic save with tight permissions.
#include "rexec/agent/config.h"

#include "rexec/common/file.h"
#include "rexec/common/unique_fd.h"
#include "rexec/net/url.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

namespace rx::agent {

namespace {

using nlohmann::json;

std::string parent_dir(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// mkdir -p with mode 0700 for the directories it creates.
Status make_dirs(const std::string& dir) {
  if (dir.empty() || dir == "/" || dir == ".") return {};

  struct stat st {};

  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Error(Errc::kConfig, dir + " exists and is not a directory");
    return {};
  }
  if (auto parent = make_dirs(parent_dir(dir)); !parent) return parent;
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::from_errno("cannot create directory " + dir, errno);
  }
  return {};
}

template <class T>
Status read_field(const json& j, const char* key, T& out) {
  const auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  try {
    out = it->get<T>();
  } catch (const json::exception&) {
    return Error(Errc::kConfig, std::string("config field '") + key + "' has the wrong type");
  }
  return {};
}

}  // namespace

std::string default_config_path() {
  if (::geteuid() == 0) return "/etc/rexec/agent.json";
  // NOLINTNEXTLINE(concurrency-mt-unsafe): called at start-up, before any thread exists.
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg == '/') {
    return std::string(xdg) + "/rexec/agent.json";
  }
  const char* home = std::getenv("HOME");  // NOLINT(concurrency-mt-unsafe): see above
  return std::string(home != nullptr ? home : ".") + "/.config/rexec/agent.json";
}

Result<AgentConfig> load_config(const std::string& path) {
  auto text = read_file(path);
  if (!text) {
    if (text.error().sys_errno == ENOENT)
      return Error(Errc::kNotFound, "no config file at " + path);
    return Error::from_errno("cannot read " + path, text.error().sys_errno);
  }
  const json j = json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(Errc::kConfig, path + " is not a JSON object");
  }
  AgentConfig c;
  for (auto status :
       {read_field(j, "server", c.server), read_field(j, "agent_id", c.agent_id),
        read_field(j, "token", c.token), read_field(j, "name", c.name),
        read_field(j, "description", c.description), read_field(j, "tags", c.tags),
        read_field(j, "shell", c.shell), read_field(j, "region", c.region),
        read_field(j, "log_level", c.log_level), read_field(j, "ca_file", c.ca_file)}) {
    if (!status) return Error(Errc::kConfig, path + ": " + status.error().message);
  }
  return c;
}

void apply_environment(AgentConfig& config,
                       const std::function<std::optional<std::string>(const char*)>& getenv) {
  const auto take = [&](const char* name, std::string& field) {
    if (auto v = getenv(name); v && !v->empty()) field = *v;
  };
  take("REXEC_SERVER", config.server);
  take("REXEC_AGENT_ID", config.agent_id);
  take("REXEC_TOKEN", config.token);
  take("REXEC_SHELL", config.shell);
  take("REXEC_REGION", config.region);
  take("REXEC_LOG_LEVEL", config.log_level);
  take("REXEC_CA_FILE", config.ca_file);
}

Status save_config(const std::string& path, const AgentConfig& config) {
  if (auto dirs = make_dirs(parent_dir(path)); !dirs) return dirs;
  json j = {{"server", config.server},
            {"agent_id", config.agent_id},
            {"token", config.token},
            {"name", config.name},
            {"description", config.description},
            {"tags", config.tags},
            {"shell", config.shell},
            {"region", config.region},
            {"log_level", config.log_level}};
  if (!config.ca_file.empty()) j["ca_file"] = config.ca_file;
  const std::string text = j.dump(2) + "\n";
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Error::from_errno("cannot write " + tmp, errno);
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      return Error::from_errno("cannot write " + tmp, err);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::fchmod(fd.get(), 0600) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Error::from_errno("cannot write " + tmp, err);
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return Error::from_errno("cannot write " + path, err);
  }
  return {};
}

Result<std::string> normalized_server(const std::string& server) {
  if (server.empty()) return Error(Errc::kConfig, "no server configured (use --server URL)");
  std::string s = server;
  while (!s.empty() && s.back() == '/') s.pop_back();
  auto url = net::Url::parse(s);
  if (!url) return Error(Errc::kConfig, "bad server URL: " + url.error().message);
  if (url->scheme != "http" && url->scheme != "https") {
    return Error(Errc::kConfig, "server URL must start with http:// or https://");
  }
  if (url->path != "/") return Error(Errc::kConfig, "server URL must not have a path");
  return s;
}

}  // namespace rx::agent
