//! `pg_catalog` and `information_schema`, enough for psql's `\dt` and `\d`, psycopg,
//! SQLAlchemy's inspector and the JDBC driver's `DatabaseMetaData`. Their queries are real SQL
//! (joins, correlated subqueries, CASE, window functions), so they run on a real SQL engine:
//! an in-memory SQLite whose catalog tables are filled from [`super::tables`], with
//! PostgreSQL's functions registered and the query rewritten where the dialects differ
//! ([`super::rewrite`]). The catalog holds no tenant data: only table and column definitions.

use super::error::{state, SqlError};
use super::tables::{tables, TableKind};
use super::values::{Cell, Column, ResultSet};
use pgwire::api::Type;
use rusqlite::types::ValueRef;
use rusqlite::Connection;
use std::sync::Mutex;

/// The version clients see: `server_version` and `version()` (SQLAlchemy and JDBC parse it).
pub const SERVER_VERSION: &str = "15.6";
pub const NAMESPACE_PUBLIC: i64 = 2200;
const NAMESPACE_CATALOG: i64 = 11;
const FIRST_TABLE_OID: i64 = 16384;
/// `pg_class`'s own oid: `pg_description.classoid` of table and column comments.
const PG_CLASS_OID: i64 = 1259;

/// Who is asking, for the session functions (`current_user`, `current_database`).
#[derive(Debug, Clone, Default)]
pub struct SessionInfo {
    pub user: String,
    pub database: String,
    /// Settings by lower-case name (`current_setting`).
    pub settings: std::collections::HashMap<String, String>,
}

pub struct Catalog {
    db: Mutex<Connection>,
    /// Stops the statement running on `db` (a cancel request or the statement timeout).
    interrupt: rusqlite::InterruptHandle,
    /// Which query runs on `db` (0: none) and the queries given up before they started, so a
    /// cancel stops its own query, never another session's.
    running: Mutex<(u64, std::collections::HashSet<u64>)>,
    tickets: std::sync::atomic::AtomicU64,
}

/// `(oid, name, format_type, length, by value, category)` of every type a column has.
const TYPES: &[(i64, &str, &str, i64, bool, &str)] = &[
    (16, "bool", "boolean", 1, true, "B"),
    (18, "char", "\"char\"", 1, true, "S"),
    (19, "name", "name", 64, false, "S"),
    (20, "int8", "bigint", 8, true, "N"),
    (21, "int2", "smallint", 2, true, "N"),
    (23, "int4", "integer", 4, true, "N"),
    (25, "text", "text", -1, false, "S"),
    (26, "oid", "oid", 4, true, "N"),
    (700, "float4", "real", 4, true, "N"),
    (701, "float8", "double precision", 8, true, "N"),
    (1043, "varchar", "character varying", -1, false, "S"),
    (1082, "date", "date", 4, true, "D"),
    (1114, "timestamp", "timestamp without time zone", 8, true, "D"),
    (1184, "timestamptz", "timestamp with time zone", 8, true, "D"),
    (1700, "numeric", "numeric", -1, false, "N"),
];

/// The catalog's tables. Columns are those clients read; empty ones answer "none" (no
/// indexes, constraints, triggers, policies …), which is true of virtual tables.
const SCHEMA: &str = r#"
ATTACH DATABASE ':memory:' AS pg_catalog;
ATTACH DATABASE ':memory:' AS information_schema;
CREATE TABLE pg_catalog.pg_namespace (oid oid, nspname name, nspowner oid, nspacl text);
CREATE TABLE pg_catalog.pg_class (oid oid, relname name, relnamespace oid, reltype oid, reloftype oid, relowner oid,
  relam oid, relfilenode oid, reltablespace oid, relpages int4, reltuples float4, relallvisible int4, reltoastrelid oid,
  relhasindex bool, relisshared bool, relpersistence char, relkind char, relnatts int2, relchecks int2, relhasrules bool,
  relhastriggers bool, relhassubclass bool, relrowsecurity bool, relforcerowsecurity bool, relispopulated bool,
  relreplident char, relispartition bool, relrewrite oid, relfrozenxid int8, relminmxid int8, relacl text,
  reloptions text, relpartbound text);
CREATE TABLE pg_catalog.pg_attribute (attrelid oid, attname name, atttypid oid, attstattarget int4, attlen int2,
  attnum int2, attndims int4, attcacheoff int4, atttypmod int4, attbyval bool, attalign char, attstorage char,
  attcompression char, attnotnull bool, atthasdef bool, atthasmissing bool, attidentity char, attgenerated char,
  attisdropped bool, attislocal bool, attinhcount int4, attcollation oid, attacl text, attoptions text,
  attfdwoptions text, attmissingval text);
CREATE TABLE pg_catalog.pg_type (oid oid, typname name, typnamespace oid, typowner oid, typlen int2, typbyval bool,
  typtype char, typcategory char, typispreferred bool, typisdefined bool, typdelim char, typrelid oid,
  typsubscript text, typelem oid, typarray oid, typinput text, typoutput text, typreceive text, typsend text,
  typmodin text, typmodout text, typanalyze text, typalign char, typstorage char, typnotnull bool, typbasetype oid,
  typtypmod int4, typndims int4, typcollation oid, typdefaultbin text, typdefault text, typacl text);
CREATE TABLE pg_catalog.pg_description (objoid oid, classoid oid, objsubid int4, description text);
CREATE TABLE pg_catalog.pg_attrdef (oid oid, adrelid oid, adnum int2, adbin text);
CREATE TABLE pg_catalog.pg_index (indexrelid oid, indrelid oid, indnatts int2, indnkeyatts int2, indisunique bool,
  indnullsnotdistinct bool, indisprimary bool, indisexclusion bool, indimmediate bool, indisclustered bool,
  indisvalid bool, indcheckxmin bool, indisready bool, indislive bool, indisreplident bool, indkey text,
  indcollation text, indclass text, indoption text, indexprs text, indpred text);
CREATE TABLE pg_catalog.pg_constraint (oid oid, conname name, connamespace oid, contype char, condeferrable bool,
  condeferred bool, convalidated bool, conrelid oid, contypid oid, conindid oid, conparentid oid, confrelid oid,
  confupdtype char, confdeltype char, confmatchtype char, conislocal bool, coninhcount int4, connoinherit bool,
  conkey text, confkey text, conpfeqop text, conppeqop text, conffeqop text, confdelsetcols text, conexclop text,
  conbin text);
CREATE TABLE pg_catalog.pg_inherits (inhrelid oid, inhparent oid, inhseqno int4, inhdetachpending bool);
CREATE TABLE pg_catalog.pg_am (oid oid, amname name, amhandler text, amtype char);
CREATE TABLE pg_catalog.pg_collation (oid oid, collname name, collnamespace oid, collowner oid, collprovider char,
  collisdeterministic bool, collencoding int4, collcollate text, collctype text, colliculocale text, collversion text);
CREATE TABLE pg_catalog.pg_enum (oid oid, enumtypid oid, enumsortorder float4, enumlabel name);
CREATE TABLE pg_catalog.pg_trigger (oid oid, tgrelid oid, tgparentid oid, tgname name, tgfoid oid, tgtype int2,
  tgenabled char, tgisinternal bool, tgconstrrelid oid, tgconstrindid oid, tgconstraint oid, tgdeferrable bool,
  tginitdeferred bool, tgnargs int2, tgattr text, tgargs text, tgqual text, tgoldtable name, tgnewtable name);
CREATE TABLE pg_catalog.pg_policy (oid oid, polname name, polrelid oid, polcmd char, polpermissive bool,
  polroles text, polqual text, polwithcheck text);
CREATE TABLE pg_catalog.pg_statistic_ext (oid oid, stxrelid oid, stxname name, stxnamespace oid, stxowner oid,
  stxstattarget int4, stxkeys text, stxkind text, stxexprs text);
CREATE TABLE pg_catalog.pg_publication (oid oid, pubname name, pubowner oid, puballtables bool, pubinsert bool,
  pubupdate bool, pubdelete bool, pubtruncate bool, pubviaroot bool);
CREATE TABLE pg_catalog.pg_publication_rel (oid oid, prpubid oid, prrelid oid, prqual text, prattrs text);
CREATE TABLE pg_catalog.pg_publication_namespace (oid oid, pnpubid oid, pnnspid oid);
CREATE TABLE pg_catalog.pg_rewrite (oid oid, rulename name, ev_class oid, ev_type char, ev_enabled char,
  is_instead bool, ev_qual text, ev_action text);
CREATE TABLE pg_catalog.pg_sequence (seqrelid oid, seqtypid oid, seqstart int8, seqincrement int8, seqmax int8,
  seqmin int8, seqcache int8, seqcycle bool);
CREATE TABLE pg_catalog.pg_foreign_table (ftrelid oid, ftserver oid, ftoptions text);
CREATE TABLE pg_catalog.pg_partitioned_table (partrelid oid, partstrat char, partnatts int2, partdefid oid,
  partattrs text, partclass text, partcollation text, partexprs text);
CREATE TABLE pg_catalog.pg_extension (oid oid, extname name, extowner oid, extnamespace oid, extrelocatable bool,
  extversion text, extconfig text, extcondition text);
CREATE TABLE pg_catalog.pg_proc (oid oid, proname name, pronamespace oid, proowner oid, prokind char,
  prorettype oid, proargtypes text, proretset bool);
CREATE TABLE pg_catalog.pg_tablespace (oid oid, spcname name, spcowner oid, spcacl text, spcoptions text);
CREATE TABLE pg_catalog.pg_database (oid oid, datname name, datdba oid, encoding int4, datlocprovider char,
  datistemplate bool, datallowconn bool, datconnlimit int4, datfrozenxid int8, datminmxid int8, dattablespace oid,
  datcollate text, datctype text, daticulocale text, datcollversion text, datacl text);
CREATE TABLE pg_catalog.pg_roles (oid oid, rolname name, rolsuper bool, rolinherit bool, rolcreaterole bool,
  rolcreatedb bool, rolcanlogin bool, rolreplication bool, rolconnlimit int4, rolpassword text, rolvaliduntil text,
  rolbypassrls bool, rolconfig text);
CREATE TABLE pg_catalog.pg_settings (name text, setting text, unit text, category text, short_desc text,
  extra_desc text, context text, vartype text, source text, min_val text, max_val text, enumvals text,
  boot_val text, reset_val text, sourcefile text, sourceline int4, pending_restart bool);
CREATE VIEW pg_catalog.pg_user AS SELECT rolname AS usename, oid AS usesysid, rolcreatedb AS usecreatedb,
  rolsuper AS usesuper, rolreplication AS userepl, rolbypassrls AS usebypassrls, '********' AS passwd,
  rolvaliduntil AS valuntil, rolconfig AS useconfig FROM pg_roles;
CREATE VIEW pg_catalog.pg_tables AS SELECT n.nspname AS schemaname, c.relname AS tablename,
  'dialboard' AS tableowner, NULL AS tablespace, c.relhasindex AS hasindexes, c.relhasrules AS hasrules,
  c.relhastriggers AS hastriggers, c.relrowsecurity AS rowsecurity
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p');
CREATE TABLE pg_catalog.pg_views (schemaname name, viewname name, viewowner name, definition text);
CREATE TABLE pg_catalog.pg_matviews (schemaname name, matviewname name, matviewowner name, tablespace name,
  hasindexes bool, ispopulated bool, definition text);
CREATE TABLE information_schema.schemata (catalog_name name, schema_name name, schema_owner name,
  default_character_set_catalog name, default_character_set_schema name, default_character_set_name name,
  sql_path text);
CREATE TABLE information_schema.tables (table_catalog name, table_schema name, table_name name, table_type text,
  self_referencing_column_name name, reference_generation text, user_defined_type_catalog name,
  user_defined_type_schema name, user_defined_type_name name, is_insertable_into text, is_typed text,
  commit_action text);
CREATE TABLE information_schema.columns (table_catalog name, table_schema name, table_name name, column_name name,
  ordinal_position int4, column_default text, is_nullable text, data_type text, character_maximum_length int4,
  character_octet_length int4, numeric_precision int4, numeric_precision_radix int4, numeric_scale int4,
  datetime_precision int4, interval_type text, interval_precision int4, character_set_catalog name,
  character_set_schema name, character_set_name name, collation_catalog name, collation_schema name,
  collation_name name, domain_catalog name, domain_schema name, domain_name name, udt_catalog name,
  udt_schema name, udt_name name, scope_catalog name, scope_schema name, scope_name name,
  maximum_cardinality int4, dtd_identifier name, is_self_referencing text, is_identity text,
  identity_generation text, identity_start text, identity_increment text, identity_maximum text,
  identity_minimum text, identity_cycle text, is_generated text, generation_expression text, is_updatable text);
CREATE TABLE information_schema.views (table_catalog name, table_schema name, table_name name,
  view_definition text, check_option text, is_updatable text, is_insertable_into text,
  is_trigger_updatable text, is_trigger_deletable text, is_trigger_insertable_into text);
CREATE TABLE information_schema.table_constraints (constraint_catalog name, constraint_schema name,
  constraint_name name, table_catalog name, table_schema name, table_name name, constraint_type text,
  is_deferrable text, initially_deferred text, enforced text, nulls_distinct text);
CREATE TABLE information_schema.key_column_usage (constraint_catalog name, constraint_schema name,
  constraint_name name, table_catalog name, table_schema name, table_name name, column_name name,
  ordinal_position int4, position_in_unique_constraint int4);
CREATE TABLE information_schema.routines (specific_name name, routine_schema name, routine_name name,
  routine_type text, data_type text);
INSERT INTO pg_catalog.pg_am VALUES (2, 'heap', 'heap_tableam_handler', 't');
INSERT INTO pg_catalog.pg_namespace VALUES (11, 'pg_catalog', 10, NULL), (2200, 'public', 10, NULL),
  (13000, 'information_schema', 10, NULL);
INSERT INTO information_schema.schemata VALUES (NULL, 'pg_catalog', 'dialboard', NULL, NULL, NULL, NULL),
  (NULL, 'public', 'dialboard', NULL, NULL, NULL, NULL), (NULL, 'information_schema', 'dialboard', NULL, NULL, NULL, NULL);
INSERT INTO pg_catalog.pg_roles VALUES (10, 'dialboard', 0, 1, 0, 0, 1, 0, -1, NULL, NULL, 0, NULL);
INSERT INTO pg_catalog.pg_collation VALUES (100, 'default', 11, 10, 'd', 1, -1, NULL, NULL, NULL, NULL);
INSERT INTO pg_catalog.pg_tablespace VALUES (1663, 'pg_default', 10, NULL, NULL);
PRAGMA case_sensitive_like = ON;
"#;

impl Catalog {
    pub fn new() -> Result<Catalog, rusqlite::Error> {
        let db = Connection::open_in_memory()?;
        db.execute_batch(SCHEMA)?;
        fill(&db)?;
        super::functions::register(&db)?;
        Ok(Catalog {
            interrupt: db.get_interrupt_handle(),
            db: Mutex::new(db),
            running: Mutex::new((0, Default::default())),
            tickets: Default::default(),
        })
    }

    /// A number that names one query for [`Catalog::query`] and [`Catalog::stop`].
    pub fn ticket(&self) -> u64 {
        self.tickets.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// Stops the query `ticket` whether it runs or still waits for the catalog.
    pub fn stop(&self, ticket: u64) {
        let mut running = self.running.lock().expect("catalog state");
        if running.0 == ticket {
            self.interrupt.interrupt();
        } else {
            running.1.insert(ticket);
        }
    }

    /// Runs a catalog query (already rewritten for SQLite) for a session; [`Catalog::stop`]
    /// with the same ticket ends it (the catalog is shared: a runaway query would hold it).
    pub fn query(&self, sql: &str, session: &SessionInfo, ticket: u64) -> Result<ResultSet, SqlError> {
        let db = self.db.lock().expect("catalog lock");
        {
            let mut running = self.running.lock().expect("catalog state");
            if running.1.remove(&ticket) {
                return Err(SqlError::new(state::QUERY_CANCELED, "canceling statement"));
            }
            running.0 = ticket;
        }
        let answer = Self::run(&db, sql, session);
        self.running.lock().expect("catalog state").0 = 0;
        answer
    }

    fn run(db: &Connection, sql: &str, session: &SessionInfo) -> Result<ResultSet, SqlError> {
        super::functions::register_session(db, session).map_err(internal)?;
        let mut stmt = db.prepare(sql).map_err(|e| catalog_error(&e))?;
        let declared: Vec<Option<Type>> = stmt
            .columns()
            .iter()
            .map(|c| c.decl_type().and_then(declared_type))
            .collect();
        let names: Vec<String> = stmt.column_names().iter().map(|n| n.to_string()).collect();
        let width = names.len();
        let mut rows = Vec::new();
        let mut query = stmt.query([]).map_err(|e| catalog_error(&e))?;
        while let Some(row) = query.next().map_err(|e| catalog_error(&e))? {
            let mut cells = Vec::with_capacity(width);
            for i in 0..width {
                cells.push(match row.get_ref(i).map_err(|e| catalog_error(&e))? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(v) => Cell::Int(v),
                    ValueRef::Real(v) => Cell::Float(v),
                    ValueRef::Text(t) => Cell::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Cell::Text(String::from_utf8_lossy(b).into_owned()),
                });
            }
            rows.push(cells);
        }
        let columns = names
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let ty = declared[i]
                    .clone()
                    .unwrap_or_else(|| inferred_type(rows.iter().map(|r: &Vec<Cell>| &r[i])));
                Column::new(name, ty)
            })
            .collect();
        Ok(ResultSet { columns, rows })
    }
}

fn internal(e: rusqlite::Error) -> SqlError {
    tracing::error!(error = %e, "sql catalog");
    SqlError::new(state::INTERNAL, "internal error")
}

/// SQLite's message names what the catalog lacks (a column, a function), which is what a
/// client's author needs; it holds no data.
fn catalog_error(e: &rusqlite::Error) -> SqlError {
    let message = e.to_string();
    let code = if message.contains("no such table") {
        state::UNDEFINED_TABLE
    } else if message.contains("no such column") {
        state::UNDEFINED_COLUMN
    } else {
        state::NOT_SUPPORTED
    };
    SqlError::new(code, format!("catalog query not supported: {message}"))
}

fn declared_type(decl: &str) -> Option<Type> {
    Some(match decl.to_ascii_lowercase().as_str() {
        "oid" => Type::OID,
        "name" => Type::NAME,
        "text" => Type::TEXT,
        "bool" => Type::BOOL,
        "char" => Type::CHAR,
        "int2" => Type::INT2,
        "int4" => Type::INT4,
        "int8" => Type::INT8,
        "float4" => Type::FLOAT4,
        _ => return None,
    })
}

/// The type of a computed column: that of its values (SQLite's are dynamic).
fn inferred_type<'a>(mut cells: impl Iterator<Item = &'a Cell>) -> Type {
    match cells.find(|c| **c != Cell::Null) {
        Some(Cell::Int(_)) => Type::INT8,
        Some(Cell::Float(_)) => Type::FLOAT8,
        Some(Cell::Bool(_)) => Type::BOOL,
        _ => Type::TEXT,
    }
}

/// The PostgreSQL type name of a column type (`pg_type.typname`), its oid and `format_type`.
pub fn type_info(ty: &Type) -> (i64, &'static str, &'static str) {
    TYPES
        .iter()
        .find(|t| t.0 == ty.oid() as i64)
        .map_or((25, "text", "text"), |t| (t.0, t.1, t.2))
}

/// A type's oid by its name or its `format_type` (`'int8'::regtype`, `'bigint'::regtype`).
pub fn type_oid(name: &str) -> Option<i64> {
    let name = name.trim().trim_start_matches("pg_catalog.").to_lowercase();
    TYPES.iter().find(|t| t.1 == name || t.2 == name).map(|t| t.0)
}

pub fn format_type(oid: i64) -> Option<&'static str> {
    TYPES.iter().find(|t| t.0 == oid).map(|t| t.2)
}

/// The oid of a relation by name (`'pg_class'::regclass`).
pub fn relation_oid(name: &str) -> Option<i64> {
    let name = name.trim_matches('"');
    let name = name.rsplit('.').next().unwrap_or(name);
    if name == "pg_class" {
        return Some(PG_CLASS_OID);
    }
    tables()
        .iter()
        .position(|t| t.name == name)
        .map(|i| FIRST_TABLE_OID + i as i64)
}

pub fn relation_name(oid: i64) -> Option<String> {
    if oid == PG_CLASS_OID {
        return Some("pg_class".into());
    }
    tables()
        .get(usize::try_from(oid - FIRST_TABLE_OID).ok()?)
        .map(|t| t.name.to_string())
}

fn fill(db: &Connection) -> rusqlite::Result<()> {
    for (oid, name, _, len, byval, category) in TYPES {
        db.execute(
            "INSERT INTO pg_catalog.pg_type (oid, typname, typnamespace, typowner, typlen, typbyval, typtype, typcategory,
               typispreferred, typisdefined, typdelim, typrelid, typelem, typarray, typalign, typstorage, typnotnull,
               typbasetype, typtypmod, typndims, typcollation)
             VALUES (?1, ?2, 11, 10, ?3, ?4, 'b', ?5, 0, 1, ',', 0, 0, 0, 'i', 'p', 0, 0, -1, 0, ?6)",
            rusqlite::params![oid, name, len, byval, category, if *category == "S" { 100 } else { 0 }],
        )?;
    }
    db.execute(
        "INSERT INTO pg_catalog.pg_class (oid, relname, relnamespace, relkind, relpersistence, relam, relowner, relnatts,
           relchecks, relhasindex, relhasrules, relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity,
           relispopulated, relreplident, relispartition, reltablespace, reltoastrelid, reloftype, reltype, relisshared)
         VALUES (?1, 'pg_class', ?2, 'r', 'p', 2, 10, 33, 0, 0, 0, 0, 0, 0, 0, 1, 'n', 0, 0, 0, 0, 0, 0)",
        rusqlite::params![PG_CLASS_OID, NAMESPACE_CATALOG],
    )?;
    for (i, table) in tables().iter().enumerate() {
        let oid = FIRST_TABLE_OID + i as i64;
        let kind = match table.kind {
            TableKind::Rollup => "rollup",
            TableKind::Calls | TableKind::Records(_) => "drill-down",
            TableKind::Directory(_) => "directory",
        };
        db.execute(
            "INSERT INTO pg_catalog.pg_class (oid, relname, relnamespace, relkind, relpersistence, relam, relowner,
               relnatts, relchecks, relhasindex, relhasrules, relhastriggers, relhassubclass, relrowsecurity,
               relforcerowsecurity, relispopulated, relreplident, relispartition, reltablespace, reltoastrelid,
               reloftype, reltype, relisshared, relpages, reltuples, relallvisible)
             VALUES (?1, ?2, ?3, 'r', 'p', 2, 10, ?4, 0, 0, 0, 0, 0, 0, 0, 1, 'n', 0, 0, 0, 0, 0, 0, 0, -1, 0)",
            rusqlite::params![oid, table.name, NAMESPACE_PUBLIC, table.columns.len() as i64],
        )?;
        db.execute(
            "INSERT INTO pg_catalog.pg_description VALUES (?1, ?2, 0, ?3)",
            rusqlite::params![oid, PG_CLASS_OID, format!("{} ({kind})", table.description)],
        )?;
        db.execute(
            "INSERT INTO information_schema.tables (table_catalog, table_schema, table_name, table_type,
               is_insertable_into, is_typed) VALUES ('dialboard', 'public', ?1, 'BASE TABLE', 'NO', 'NO')",
            [table.name],
        )?;
        for (n, column) in table.columns.iter().enumerate() {
            let (type_oid, type_name, formatted) = type_info(&column.pg_type);
            let num = n as i64 + 1;
            let (len, byval) = TYPES
                .iter()
                .find(|t| t.0 == type_oid)
                .map_or((-1, false), |t| (t.3, t.4));
            let collation = if type_oid == 25 { 100 } else { 0 };
            db.execute(
                "INSERT INTO pg_catalog.pg_attribute (attrelid, attname, atttypid, attstattarget, attlen, attnum,
                   attndims, attcacheoff, atttypmod, attbyval, attalign, attstorage, attcompression, attnotnull,
                   atthasdef, atthasmissing, attidentity, attgenerated, attisdropped, attislocal, attinhcount,
                   attcollation)
                 VALUES (?1, ?2, ?3, -1, ?4, ?5, 0, -1, -1, ?6, 'i', 'p', '', 0, 0, 0, '', '', 0, 1, 0, ?7)",
                rusqlite::params![oid, column.name, type_oid, len, num, byval, collation],
            )?;
            db.execute(
                "INSERT INTO pg_catalog.pg_description VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![oid, PG_CLASS_OID, num, column.description],
            )?;
            let (precision, radix, scale, datetime) = match type_oid {
                20 => (Some(64), Some(2), Some(0), None),
                701 => (Some(53), Some(2), None, None),
                1184 => (None, None, None, Some(6)),
                _ => (None, None, None, None),
            };
            db.execute(
                "INSERT INTO information_schema.columns (table_catalog, table_schema, table_name, column_name,
                   ordinal_position, is_nullable, data_type, numeric_precision, numeric_precision_radix,
                   numeric_scale, datetime_precision, udt_catalog, udt_schema, udt_name, dtd_identifier,
                   is_self_referencing, is_identity, is_generated, is_updatable)
                 VALUES ('dialboard', 'public', ?1, ?2, ?3, 'YES', ?4, ?5, ?6, ?7, ?8, 'dialboard', 'pg_catalog', ?9,
                   ?3, 'NO', 'NO', 'NEVER', 'NO')",
                rusqlite::params![
                    table.name,
                    column.name,
                    num,
                    formatted,
                    precision,
                    radix,
                    scale,
                    datetime,
                    type_name
                ],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(sql: &str) -> ResultSet {
        let catalog = Catalog::new().unwrap();
        let mut statement = super::super::session::parse(sql).unwrap().pop().unwrap();
        let rewritten = super::super::rewrite::for_sqlite(&mut statement).unwrap();
        let session = SessionInfo {
            user: "acme".into(),
            database: "acme".into(),
            ..Default::default()
        };
        catalog
            .query(&rewritten, &session, catalog.ticket())
            .unwrap_or_else(|e| panic!("{rewritten}: {e}"))
    }

    fn texts(rows: &ResultSet, column: usize) -> Vec<String> {
        rows.rows
            .iter()
            .map(|r| r[column].to_text().unwrap_or_default())
            .collect()
    }

    #[test]
    fn psql_lists_the_tables() {
        let rows = run(r#"SELECT n.nspname as "Schema", c.relname as "Name",
                CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' END as "Type",
                pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
              FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
              WHERE c.relkind IN ('r','p','') AND n.nspname <> 'pg_catalog' AND n.nspname !~ '^pg_toast'
                AND n.nspname <> 'information_schema' AND pg_catalog.pg_table_is_visible(c.oid)
              ORDER BY 1,2"#);
        assert_eq!(
            texts(&rows, 1),
            [
                "agents",
                "call_metrics",
                "calls",
                "campaigns",
                "conversations",
                "lead_stages",
                "pipeline_metrics",
                "teams",
                "ticket_metrics"
            ]
        );
        assert_eq!(rows.columns[1].pg_type, Type::NAME);
    }

    #[test]
    fn psql_describes_a_table() {
        let found = run(
            "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname OPERATOR(pg_catalog.~) '^(call_metrics)$' COLLATE pg_catalog.default AND pg_catalog.pg_table_is_visible(c.oid) ORDER BY 2, 3",
        );
        let oid = texts(&found, 0).pop().unwrap();
        let columns = run(&format!(
            "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod),
               (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d
                WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull,
               (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
                WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
               a.attidentity, a.attgenerated
             FROM pg_catalog.pg_attribute a WHERE a.attrelid = '{oid}' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum"
        ));
        let described: Vec<String> = columns
            .rows
            .iter()
            .map(|r| format!("{} {}", r[0].to_text().unwrap(), r[1].to_text().unwrap()))
            .collect();
        assert_eq!(described[0], "time timestamp with time zone");
        assert!(described.contains(&"total_calls bigint".to_string()), "{described:?}");
        // The footers psql asks for: none of them may fail.
        run(&format!(
            "SELECT c.relchecks, c.relkind, c.relhasindex, false AS relhasoids, pg_catalog.array_to_string(c.reloptions || array(select 'toast.' || x from pg_catalog.unnest(tc.reloptions) x), ', '),
               CASE WHEN c.reloftype = 0 THEN '' ELSE c.reloftype::pg_catalog.regtype::pg_catalog.text END, am.amname
             FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_class tc ON (c.reltoastrelid = tc.oid)
             LEFT JOIN pg_catalog.pg_am am ON (c.relam = am.oid) WHERE c.oid = '{oid}'"
        ));
        run(&format!(
            "SELECT pubname, NULL, NULL FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_namespace pn ON p.oid = pn.pnpubid
               JOIN pg_catalog.pg_class pc ON pc.relnamespace = pn.pnnspid WHERE pc.oid ='{oid}' and pg_catalog.pg_relation_is_publishable('{oid}')
             UNION
             SELECT pubname, pg_get_expr(pr.prqual, c.oid), (CASE WHEN pr.prattrs IS NOT NULL THEN
               (SELECT string_agg(attname, ', ') FROM pg_catalog.generate_series(0, pg_catalog.array_upper(pr.prattrs::pg_catalog.int2[], 1)) s,
                  pg_catalog.pg_attribute WHERE attrelid = pr.prrelid AND attnum = prattrs[s]) ELSE NULL END)
             FROM pg_catalog.pg_publication p JOIN pg_catalog.pg_publication_rel pr ON p.oid = pr.prpubid
               JOIN pg_catalog.pg_class c ON c.oid = pr.prrelid WHERE pr.prrelid = '{oid}'
             ORDER BY 1"
        ));
        run(&format!(
            "SELECT oid, stxrelid::pg_catalog.regclass, stxnamespace::pg_catalog.regnamespace::pg_catalog.text AS nsp, stxname,
               'd' = any(stxkind) AS ndist_enabled FROM pg_catalog.pg_statistic_ext WHERE stxrelid = '{oid}' ORDER BY nsp, stxname"
        ));
    }

    #[test]
    fn jdbc_lists_tables_and_columns() {
        let tables = run(
            "SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, c.relname AS TABLE_NAME, \
             CASE n.nspname ~ '^pg_' OR n.nspname = 'information_schema' WHEN true THEN 'SYSTEM TABLE' WHEN false THEN \
             CASE c.relkind WHEN 'r' THEN 'TABLE' ELSE NULL END ELSE NULL END AS TABLE_TYPE, d.description AS REMARKS \
             FROM pg_catalog.pg_namespace n, pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_description d \
             ON (c.oid = d.objoid AND d.objsubid = 0 and d.classoid = 'pg_class'::regclass) \
             WHERE c.relnamespace = n.oid AND n.nspname LIKE 'public' AND c.relname LIKE '%' \
             AND (false OR ( c.relkind IN ('r','p') AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' ) ) \
             ORDER BY TABLE_TYPE,TABLE_SCHEM,TABLE_NAME",
        );
        assert_eq!(texts(&tables, 2)[1], "call_metrics");
        assert!(texts(&tables, 4)[1].contains("rollup"));
        let columns = run(
            "SELECT * FROM (SELECT n.nspname,c.relname,a.attname,a.atttypid,a.attnotnull OR (t.typtype = 'd' AND t.typnotnull) AS attnotnull, \
             row_number() OVER (PARTITION BY a.attrelid ORDER BY a.attnum) AS attnum, nullif(a.attidentity, '') as attidentity, \
             pg_catalog.pg_get_expr(def.adbin, def.adrelid) AS adsrc, dsc.description, t.typbasetype, t.typtype \
             FROM pg_catalog.pg_namespace n JOIN pg_catalog.pg_class c ON (c.relnamespace = n.oid) \
             JOIN pg_catalog.pg_attribute a ON (a.attrelid=c.oid) JOIN pg_catalog.pg_type t ON (a.atttypid = t.oid) \
             LEFT JOIN pg_catalog.pg_attrdef def ON (a.attrelid=def.adrelid AND a.attnum = def.adnum) \
             LEFT JOIN pg_catalog.pg_description dsc ON (c.oid=dsc.objoid AND a.attnum = dsc.objsubid) \
             WHERE c.relkind in ('r','p','v','f','m') and a.attnum > 0 AND NOT a.attisdropped \
             AND n.nspname LIKE 'public' AND c.relname LIKE 'call\\_metrics' ) c WHERE true AND attname LIKE '%' \
             ORDER BY nspname,c.relname,attnum",
        );
        assert_eq!(texts(&columns, 2)[0], "time");
        assert_eq!(texts(&columns, 3)[0], "1184");
    }

    #[test]
    fn connect_time_functions_answer() {
        let rows = run("SELECT pg_catalog.version(), current_schema(), current_user, current_database(), 'int8'::regtype::oid, 'b' = ANY(ARRAY['a', 'b'])");
        assert!(texts(&rows, 0)[0].starts_with("PostgreSQL 15.6"));
        assert_eq!(&texts(&rows, 1)[0], "public");
        assert_eq!(&texts(&rows, 2)[0], "acme");
        assert_eq!(&texts(&rows, 3)[0], "acme");
        assert_eq!(&texts(&rows, 4)[0], "20");
    }
}
