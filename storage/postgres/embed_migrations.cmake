# Generates migrations_sql.h from storage/postgres/migrations/NNNN_name.sql (run in
# script mode: cmake -DSRC_DIR=... -DOUT=... -P embed_migrations.cmake).
file(GLOB sql_files "${SRC_DIR}/[0-9][0-9][0-9][0-9]_*.sql")
list(SORT sql_files)
set(body "")
foreach(f ${sql_files})
  get_filename_component(base ${f} NAME_WE)
  string(SUBSTRING ${base} 0 4 ver)
  math(EXPR ver "${ver}")
  string(SUBSTRING ${base} 5 -1 name)
  file(READ ${f} sql)
  string(APPEND body "  {${ver}, \"${name}\", R\"lethe_sql(${sql})lethe_sql\"},\n")
endforeach()
file(WRITE ${OUT}.tmp
"// Generated from storage/postgres/migrations/*.sql; do not edit.
#ifndef LETHE_STORAGE_MIGRATIONS_SQL_H_
#define LETHE_STORAGE_MIGRATIONS_SQL_H_
namespace lethe::storage {
struct EmbeddedMigration { int version; const char* name; const char* sql; };
inline constexpr EmbeddedMigration kEmbeddedMigrations[] = {
${body}};
}  // namespace lethe::storage
#endif
")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
