-- Mailu's admin database as SQLAlchemy creates it on SQLite (Mailu 2024.06,
-- core/admin/mailu/models.py after the last alembic migration): every
-- table has created_at/updated_at/comment (Base); booleans are 0/1, dates
-- 'YYYY-MM-DD', comma-separated lists are plain strings.
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE config (
	name VARCHAR(255) NOT NULL,
	value JSON,
	PRIMARY KEY (name)
);
CREATE TABLE domain (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	name VARCHAR(80) NOT NULL,
	max_users INTEGER NOT NULL,
	max_aliases INTEGER NOT NULL,
	max_quota_bytes BIGINT NOT NULL,
	signup_enabled BOOLEAN NOT NULL,
	PRIMARY KEY (name)
);
CREATE TABLE relay (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	name VARCHAR(80) NOT NULL,
	smtp VARCHAR(80),
	PRIMARY KEY (name)
);
CREATE TABLE alternative (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	name VARCHAR(80) NOT NULL,
	domain_name VARCHAR(80),
	PRIMARY KEY (name),
	FOREIGN KEY(domain_name) REFERENCES domain (name)
);
CREATE TABLE user (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	localpart VARCHAR(80) NOT NULL,
	domain_name VARCHAR(80) NOT NULL,
	email VARCHAR(255) NOT NULL,
	password VARCHAR(255) NOT NULL,
	quota_bytes BIGINT NOT NULL,
	quota_bytes_used BIGINT NOT NULL,
	global_admin BOOLEAN NOT NULL,
	enabled BOOLEAN NOT NULL,
	change_pw_next_login BOOLEAN NOT NULL,
	enable_imap BOOLEAN NOT NULL,
	enable_pop BOOLEAN NOT NULL,
	allow_spoofing BOOLEAN NOT NULL,
	forward_enabled BOOLEAN NOT NULL,
	forward_destination VARCHAR(255),
	forward_keep BOOLEAN NOT NULL,
	reply_enabled BOOLEAN NOT NULL,
	reply_subject VARCHAR(255),
	reply_body TEXT,
	reply_startdate DATE,
	reply_enddate DATE,
	displayed_name VARCHAR(160) NOT NULL,
	spam_enabled BOOLEAN NOT NULL,
	spam_mark_as_read BOOLEAN NOT NULL,
	spam_threshold INTEGER NOT NULL,
	PRIMARY KEY (email),
	FOREIGN KEY(domain_name) REFERENCES domain (name)
);
CREATE TABLE alias (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	localpart VARCHAR(80) NOT NULL,
	domain_name VARCHAR(80) NOT NULL,
	email VARCHAR(255) NOT NULL,
	wildcard BOOLEAN NOT NULL,
	destination VARCHAR NOT NULL,
	PRIMARY KEY (email),
	FOREIGN KEY(domain_name) REFERENCES domain (name)
);
CREATE TABLE manager (
	domain_name VARCHAR(80),
	user_email VARCHAR(255),
	FOREIGN KEY(domain_name) REFERENCES domain (name),
	FOREIGN KEY(user_email) REFERENCES user (email)
);
CREATE TABLE token (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	id INTEGER NOT NULL,
	user_email VARCHAR(255) NOT NULL,
	password VARCHAR(255) NOT NULL,
	ip VARCHAR(255),
	PRIMARY KEY (id),
	FOREIGN KEY(user_email) REFERENCES user (email)
);
CREATE TABLE fetch (
	created_at DATE NOT NULL,
	updated_at DATE,
	comment VARCHAR(255),
	id INTEGER NOT NULL,
	user_email VARCHAR(255) NOT NULL,
	protocol VARCHAR(4) NOT NULL,
	host VARCHAR(255) NOT NULL,
	port INTEGER NOT NULL,
	tls BOOLEAN NOT NULL,
	username VARCHAR(255) NOT NULL,
	password VARCHAR(255) NOT NULL,
	keep BOOLEAN NOT NULL,
	scan BOOLEAN NOT NULL,
	folders VARCHAR(1023),
	last_check DATETIME,
	error VARCHAR(1023),
	PRIMARY KEY (id),
	FOREIGN KEY(user_email) REFERENCES user (email),
	CONSTRAINT protocol CHECK (protocol IN ('imap', 'pop3'))
);
