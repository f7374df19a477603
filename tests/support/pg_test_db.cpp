// SPDX-License-Identifier: MIT
#include "pg_test_db.h"

#include <libpq-fe.h>

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>

namespace rx::test {

std::string pg_query(const std::string& url, const std::string& sql) {
  PGconn* c = PQconnectdb(url.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("test cluster " + url + ": " + why);
  }
  PGresult* r = PQexec(c, sql.c_str());
  const ExecStatusType status = PQresultStatus(r);
  const bool ok = status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK;
  std::string why = PQresultErrorMessage(r);
  std::string value = ok && PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  PQfinish(c);
  if (!ok) throw std::runtime_error(sql + ": " + why);
  return value;
}

std::string pg_cluster_url() {
  const char* file = std::getenv("REXEC_TEST_PG_URL_FILE");  // NOLINT(concurrency-mt-unsafe)
  if (file == nullptr || *file == '\0') return "";
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url;
}

bool pg_required() {
  const char* v = std::getenv("REXEC_REQUIRE_PG");  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr && *v != '\0';
}

PgTestDb::PgTestDb(const std::string& cluster_url) : cluster_url_(cluster_url) {
  static std::atomic<int> counter{0};
  std::random_device rd;
  name_ = "rx_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" +
          std::to_string(rd() % 100000);
  pg_query(cluster_url_, "CREATE DATABASE " + name_);
  const std::size_t slash = cluster_url_.rfind('/');
  url_ = cluster_url_.substr(0, slash + 1) + name_;
}

PgTestDb::~PgTestDb() {
  try {
    pg_query(cluster_url_, "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
  } catch (const std::exception&) {  // the cluster is gone with everything in it
  }
}

}  // namespace rx::test
