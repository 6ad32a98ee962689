# Generates queries_sql.h from storage/postgres/queries/name.sql (run in
# script mode: cmake -DSRC_DIR=... -DOUT=... -P embed_queries.cmake): one
# constant per file, `lethe::storage::sql::kName` (name in CamelCase).
file(GLOB sql_files "${SRC_DIR}/*.sql")
list(SORT sql_files)
set(body "")
foreach(f ${sql_files})
  get_filename_component(base ${f} NAME_WE)
  string(REGEX MATCHALL "[a-z0-9]+" words ${base})
  set(name "k")
  foreach(w ${words})
    string(SUBSTRING ${w} 0 1 first)
    string(SUBSTRING ${w} 1 -1 rest)
    string(TOUPPER ${first} first)
    string(APPEND name "${first}${rest}")
  endforeach()
  file(READ ${f} sql)
  string(APPEND body
    "// ${base}.sql\ninline constexpr char ${name}[] = R\"lethe_sql(${sql})lethe_sql\";\n")
endforeach()
file(WRITE ${OUT}.tmp
"// Generated from storage/postgres/queries/*.sql; do not edit.
#ifndef LETHE_STORAGE_POSTGRES_QUERIES_SQL_H_
#define LETHE_STORAGE_POSTGRES_QUERIES_SQL_H_
namespace lethe::storage::sql {
${body}}  // namespace lethe::storage::sql
#endif
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
