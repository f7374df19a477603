// SPDX-License-Identifier: MIT
// PgTestDb: a fresh, empty database on the test cluster that tests/fixtures/pg_cluster.sh
// started (its URL file is named by REXEC_TEST_PG_URL_FILE), dropped again on destruction.
// Each test gets its own, so tests running at once never see each other's records.
#pragma once

#include <string>

namespace rx::test {

// The test cluster's URL, or "" when none was started (PostgreSQL not installed here).
std::string pg_cluster_url();

// Whether a missing cluster is a failure rather than a skip (REXEC_REQUIRE_PG, set in CI).
bool pg_required();

// Runs one statement on the database at `url`: the first column of its first row, or "" when it
// returns none. Throws std::runtime_error, with the server's reason, when it fails.
std::string pg_query(const std::string& url, const std::string& sql);

class PgTestDb {
 public:
  // Throws std::runtime_error when the cluster does not answer.
  explicit PgTestDb(const std::string& cluster_url);
  ~PgTestDb();
  PgTestDb(const PgTestDb&) = delete;
  PgTestDb& operator=(const PgTestDb&) = delete;
  PgTestDb(PgTestDb&&) = delete;
  PgTestDb& operator=(PgTestDb&&) = delete;

  [[nodiscard]] const std::string& url() const { return url_; }

  [[nodiscard]] const std::string& name() const { return name_; }

 private:
  std::string cluster_url_;
  std::string name_;
  std::string url_;
};

}  // namespace rx::test
