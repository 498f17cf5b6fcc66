#include "server/task_logs.h"

#include <fstream>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace reelfarm::server {
namespace fs = std::filesystem;

fs::path TaskLogStore::PathFor(int64_t job_id, int task_index) const {
  return dir_ / std::to_string(job_id) / absl::StrCat(task_index, ".log");
}

absl::Status TaskLogStore::RemoveJob(int64_t job_id) const {
  const fs::path dir = dir_ / std::to_string(job_id);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot remove the task logs '", dir.string(), "': ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status TaskLogStore::Append(int64_t job_id, int task_index, const std::string& prefix,
                                  const std::vector<std::string>& lines) {
  if (lines.empty()) return absl::OkStatus();
  const fs::path path = PathFor(job_id, task_index);
  std::string text;
  for (const auto& line : lines) {
    for (absl::string_view part : absl::StrSplit(line, '\n', absl::SkipEmpty())) {
      absl::StrAppend(&text, prefix, part, "\n");
    }
  }
  absl::MutexLock lock(&mu_);
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
  out.flush();
  if (!out) {
    return absl::UnavailableError(
        absl::StrCat("cannot append to task log '", path.string(),
                     "'; check that the server's data folder is writable and not full"));
  }
  return absl::OkStatus();
}

std::vector<TaskLogStore::Lines> TaskLogStore::ReadNew(int64_t job_id, std::optional<int> task,
                                                       std::map<int, uint64_t>* offsets,
                                                       size_t max_lines) const {
  std::set<int> tasks;
  if (task) {
    tasks.insert(*task);
  } else {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / std::to_string(job_id), ec)) {
      int index = 0;
      if (e.path().extension() == ".log" && absl::SimpleAtoi(e.path().stem().string(), &index)) {
        tasks.insert(index);
      }
    }
  }
  std::vector<Lines> out;
  for (int index : tasks) {
    std::ifstream in(PathFor(job_id, index), std::ios::binary);
    if (!in) continue;
    uint64_t& offset = (*offsets)[index];
    in.seekg(static_cast<std::streamoff>(offset));
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Only complete lines: a line being appended right now is read next time.
    const size_t end = text.rfind('\n');
    if (end == std::string::npos) continue;
    offset += end + 1;
    Lines current{index, {}};
    for (absl::string_view line : absl::StrSplit(absl::string_view(text).substr(0, end), '\n')) {
      current.lines.emplace_back(line);
      if (current.lines.size() >= max_lines) {
        out.push_back(std::move(current));
        current = Lines{index, {}};
      }
    }
    if (!current.lines.empty()) out.push_back(std::move(current));
  }
  return out;
}

}  // namespace reelfarm::server
