-- Runs once, when the PostgreSQL volume is first initialised (/docker-entrypoint-initdb.d).
-- The store's database comes from POSTGRES_DB (relance). Temporal gets its own two databases on
-- the same server, so Temporal's schema tool and Relance's Alembic migrations never share tables,
-- and either can be moved to another server later.
CREATE DATABASE temporal;
CREATE DATABASE temporal_visibility;
