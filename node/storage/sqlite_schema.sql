-- The SQLite schema that node/storage/migrations build, for a new database
-- (node/storage/sqlite_schema.py). Made by: python -m node.storage.sqlite_schema
-- revision: 0012

CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

CREATE TABLE activities (
	id INTEGER NOT NULL, 
	uri VARCHAR(2048) NOT NULL, 
	type VARCHAR(40) NOT NULL, 
	actor VARCHAR(2048) NOT NULL, 
	object_uri VARCHAR(2048), 
	document JSON NOT NULL, 
	is_local BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_activities PRIMARY KEY (id), 
	CONSTRAINT uq_activities_uri UNIQUE (uri)
);

CREATE INDEX ix_activities_local_created ON activities (is_local, created_at);

CREATE INDEX ix_activities_object_uri ON activities (object_uri);

CREATE TABLE api_tokens (
	id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	token_hash VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	revoked_at DATETIME, 
	CONSTRAINT pk_api_tokens PRIMARY KEY (id), 
	CONSTRAINT uq_api_tokens_token_hash UNIQUE (token_hash)
);

CREATE TABLE contributions (
	id INTEGER NOT NULL, 
	uri VARCHAR(2048) NOT NULL, 
	slug VARCHAR(100) NOT NULL, 
	kind VARCHAR(20) NOT NULL, 
	title TEXT NOT NULL, 
	document JSON NOT NULL, 
	source JSON, 
	published DATETIME NOT NULL, 
	updated DATETIME NOT NULL, 
	deleted_at DATETIME, 
	CONSTRAINT pk_contributions PRIMARY KEY (id), 
	CONSTRAINT uq_contributions_slug UNIQUE (slug), 
	CONSTRAINT uq_contributions_uri UNIQUE (uri)
);

CREATE TABLE followers (
	id INTEGER NOT NULL, 
	actor_uri VARCHAR(2048) NOT NULL, 
	inbox VARCHAR(2048) NOT NULL, 
	shared_inbox VARCHAR(2048), 
	state VARCHAR(20) NOT NULL, 
	follow_activity_uri VARCHAR(2048), 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_followers PRIMARY KEY (id), 
	CONSTRAINT uq_followers_actor_uri UNIQUE (actor_uri)
);

CREATE TABLE following (
	id INTEGER NOT NULL, 
	target_uri VARCHAR(2048) NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	follow_activity_uri VARCHAR(2048), 
	created_at DATETIME NOT NULL, 
	accepted_at DATETIME, 
	backfill_state VARCHAR(20) NOT NULL, 
	backfill_cursor VARCHAR(2048), 
	CONSTRAINT pk_following PRIMARY KEY (id), 
	CONSTRAINT uq_following_target_uri UNIQUE (target_uri)
);

CREATE TABLE hosts (
	host VARCHAR(255) NOT NULL, 
	signature_scheme VARCHAR(20), 
	knock JSON, 
	consecutive_failures INTEGER NOT NULL, 
	failure_days JSON, 
	breaker_state VARCHAR(20) NOT NULL, 
	breaker_opened_at DATETIME, 
	last_success_at DATETIME, 
	last_failure_at DATETIME, 
	unavailable_since DATETIME, 
	health JSON, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_hosts PRIMARY KEY (host)
);

CREATE TABLE inbox_items (
	id INTEGER NOT NULL, 
	activity_uri VARCHAR(2048) NOT NULL, 
	inbox VARCHAR(20) NOT NULL, 
	actor VARCHAR(2048) NOT NULL, 
	remote_host VARCHAR(255) NOT NULL, 
	raw JSON NOT NULL, 
	received_at DATETIME NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	attempts INTEGER NOT NULL, 
	error TEXT, 
	processed_at DATETIME, claimed_until DATETIME, 
	CONSTRAINT pk_inbox_items PRIMARY KEY (id), 
	CONSTRAINT uq_inbox_items_activity_uri UNIQUE (activity_uri)
);

CREATE TABLE remote_actors (
	uri VARCHAR(2048) NOT NULL, 
	inbox VARCHAR(2048) NOT NULL, 
	shared_inbox VARCHAR(2048), 
	outbox VARCHAR(2048), 
	followers_url VARCHAR(2048), 
	name TEXT, 
	preferred_username VARCHAR(255), 
	kind VARCHAR(40), 
	document JSON NOT NULL, 
	fetched_at DATETIME NOT NULL, 
	CONSTRAINT pk_remote_actors PRIMARY KEY (uri)
);

CREATE TABLE remote_objects (
	id INTEGER NOT NULL, 
	uri VARCHAR(2048) NOT NULL, 
	kind VARCHAR(40), 
	attributed_to VARCHAR(2048), 
	in_reply_to VARCHAR(2048), 
	about VARCHAR(2048), 
	document JSON, 
	published DATETIME, 
	updated DATETIME, 
	deleted BOOLEAN NOT NULL, 
	received_at DATETIME NOT NULL, 
	CONSTRAINT pk_remote_objects PRIMARY KEY (id), 
	CONSTRAINT uq_remote_objects_uri UNIQUE (uri)
);

CREATE INDEX ix_remote_objects_about ON remote_objects (about);

CREATE INDEX ix_remote_objects_attributed_to ON remote_objects (attributed_to);

CREATE INDEX ix_remote_objects_in_reply_to ON remote_objects (in_reply_to);

CREATE TABLE deliveries (
	id INTEGER NOT NULL, 
	activity_id INTEGER NOT NULL, 
	inbox_url VARCHAR(2048) NOT NULL, 
	host VARCHAR(255) NOT NULL, 
	state VARCHAR(20) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME NOT NULL, 
	first_attempt_at DATETIME, 
	last_status INTEGER, 
	last_error TEXT, 
	claimed_by VARCHAR(100), 
	claimed_until DATETIME, 
	created_at DATETIME NOT NULL, 
	finished_at DATETIME, 
	CONSTRAINT pk_deliveries PRIMARY KEY (id), 
	CONSTRAINT fk_deliveries_activity_id_activities FOREIGN KEY(activity_id) REFERENCES activities (id) ON DELETE CASCADE, 
	CONSTRAINT uq_deliveries_activity_id_inbox_url UNIQUE (activity_id, inbox_url)
);

CREATE INDEX ix_deliveries_host_state ON deliveries (host, state);

CREATE TABLE users (
	id INTEGER NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	password_hash VARCHAR(255) NOT NULL, 
	failed_attempts INTEGER NOT NULL, 
	locked_until DATETIME, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_users PRIMARY KEY (id), 
	CONSTRAINT uq_users_username UNIQUE (username)
);

CREATE TABLE web_sessions (
	token_hash VARCHAR(64) NOT NULL, 
	user_id INTEGER NOT NULL, 
	csrf_token VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	expires_at DATETIME NOT NULL, 
	CONSTRAINT pk_web_sessions PRIMARY KEY (token_hash), 
	CONSTRAINT fk_web_sessions_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_web_sessions_user_id ON web_sessions (user_id);

CREATE TABLE hub_members (
	id INTEGER NOT NULL, 
	actor_uri VARCHAR(2048) NOT NULL, 
	name TEXT NOT NULL, 
	kind VARCHAR(40), 
	ags VARCHAR(8), 
	state VARCHAR(20) NOT NULL, 
	follow_activity_uri VARCHAR(2048), 
	applied_at DATETIME NOT NULL, 
	decided_at DATETIME, 
	CONSTRAINT pk_hub_members PRIMARY KEY (id), 
	CONSTRAINT uq_hub_members_actor_uri UNIQUE (actor_uri)
);

CREATE TABLE hub_sections (
	slug VARCHAR(80) NOT NULL, 
	title_de TEXT NOT NULL, 
	title_en TEXT NOT NULL, 
	position INTEGER NOT NULL, 
	parent VARCHAR(80), 
	text TEXT NOT NULL, 
	updated_at DATETIME NOT NULL, 
	CONSTRAINT pk_hub_sections PRIMARY KEY (slug)
);

CREATE TABLE hub_decisions (
	contribution_uri VARCHAR(2048) NOT NULL, 
	decision VARCHAR(20) NOT NULL, 
	note TEXT NOT NULL, 
	decided_at DATETIME NOT NULL, 
	decided_by VARCHAR(100) NOT NULL, 
	CONSTRAINT pk_hub_decisions PRIMARY KEY (contribution_uri)
);

CREATE TABLE hub_placements (
	id INTEGER NOT NULL, 
	contribution_uri VARCHAR(2048) NOT NULL, 
	section_slug VARCHAR(80) NOT NULL, 
	position INTEGER NOT NULL, 
	CONSTRAINT pk_hub_placements PRIMARY KEY (id), 
	CONSTRAINT fk_hub_placements_contribution_uri_hub_decisions FOREIGN KEY(contribution_uri) REFERENCES hub_decisions (contribution_uri) ON DELETE CASCADE, 
	CONSTRAINT uq_hub_placements_contribution_uri_section_slug UNIQUE (contribution_uri, section_slug)
);

CREATE INDEX ix_hub_placements_section_slug ON hub_placements (section_slug);

CREATE TABLE hub_editions (
	number INTEGER NOT NULL, 
	manifest JSON NOT NULL, 
	manifest_hash VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	frozen_by VARCHAR(100) NOT NULL, 
	published_at DATETIME, 
	CONSTRAINT pk_hub_editions PRIMARY KEY (number), 
	CONSTRAINT uq_hub_editions_manifest_hash UNIQUE (manifest_hash)
);

CREATE TABLE hub_topic_followers (
	id INTEGER NOT NULL, 
	topic VARCHAR(80) NOT NULL, 
	actor_uri VARCHAR(2048) NOT NULL, 
	inbox VARCHAR(2048) NOT NULL, 
	shared_inbox VARCHAR(2048), 
	follow_activity_uri VARCHAR(2048) NOT NULL, 
	created_at DATETIME NOT NULL, 
	CONSTRAINT pk_hub_topic_followers PRIMARY KEY (id), 
	CONSTRAINT uq_hub_topic_followers_topic_actor_uri UNIQUE (topic, actor_uri)
);

CREATE INDEX ix_hub_topic_followers_topic ON hub_topic_followers (topic);

CREATE TABLE hub_index_state (
	id INTEGER NOT NULL, 
	synced_until DATETIME, 
	CONSTRAINT pk_hub_index_state PRIMARY KEY (id)
);

CREATE TABLE sign_in_addresses (
	user_id INTEGER NOT NULL, 
	address VARCHAR(64) NOT NULL, 
	failed_attempts INTEGER NOT NULL, 
	locked_until DATETIME, 
	last_failure_at DATETIME, 
	last_success_at DATETIME, 
	CONSTRAINT pk_sign_in_addresses PRIMARY KEY (user_id, address), 
	CONSTRAINT fk_sign_in_addresses_user_id_users FOREIGN KEY(user_id) REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX ix_remote_objects_contributions_received ON remote_objects (received_at, id) WHERE kind IN ('Practice', 'Experience', 'Material') AND deleted IS 0;

CREATE INDEX ix_remote_objects_contributions_author ON remote_objects (attributed_to) WHERE kind IN ('Practice', 'Experience', 'Material') AND deleted IS 0;

CREATE TABLE inbox_arrivals (
	id INTEGER NOT NULL, 
	activity_uri VARCHAR(2048) NOT NULL, 
	inbox VARCHAR(20) NOT NULL, 
	actor VARCHAR(2048) NOT NULL, 
	remote_host VARCHAR(255) NOT NULL, 
	raw JSON NOT NULL, 
	received_at DATETIME NOT NULL, 
	CONSTRAINT pk_inbox_arrivals PRIMARY KEY (id)
);

CREATE INDEX ix_deliveries_due ON deliveries (state, next_attempt_at, id);

CREATE INDEX ix_inbox_items_arrival ON inbox_items (state, received_at, id);

CREATE INDEX ix_remote_objects_received ON remote_objects (received_at);

CREATE INDEX ix_remote_objects_tombstones_updated ON remote_objects (updated) WHERE deleted IS 1;

CREATE TABLE hub_membership_version (
	id INTEGER NOT NULL, 
	version BIGINT NOT NULL, 
	CONSTRAINT pk_hub_membership_version PRIMARY KEY (id)
);

CREATE TRIGGER hub_members_changed_insert AFTER INSERT ON hub_members BEGIN INSERT INTO hub_membership_version (id, version) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET version = hub_membership_version.version + 1; END;

CREATE TRIGGER hub_members_changed_update AFTER UPDATE OF state, actor_uri ON hub_members BEGIN INSERT INTO hub_membership_version (id, version) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET version = hub_membership_version.version + 1; END;

CREATE TRIGGER hub_members_changed_delete AFTER DELETE ON hub_members BEGIN INSERT INTO hub_membership_version (id, version) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET version = hub_membership_version.version + 1; END;
