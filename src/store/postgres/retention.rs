//! TODO(issue 30): retention on PostgreSQL.
