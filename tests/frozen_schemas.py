"""The schemas of earlier releases, verbatim and frozen: the files that migrations start from.

Never edit these: a file written by that release stays as it was written.
"""

# bot/store.py at schema version 1 (the first release).
V1_SCHEMA = '''
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_poll_at TEXT,
    last_ok_at TEXT,
    last_error TEXT,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT,
    paused_at TEXT,
    articles_seen INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE TABLE IF NOT EXISTS articles (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    published TEXT,
    seen_at TEXT NOT NULL,
    passages INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    text TEXT  -- kept (capped) so that a new seed can be backtested on past articles
);
CREATE INDEX IF NOT EXISTS articles_content ON articles (source, content_hash);
CREATE TABLE IF NOT EXISTS matches (
    id INTEGER PRIMARY KEY,
    article_key TEXT NOT NULL REFERENCES articles(key),
    narrative_id TEXT NOT NULL,
    narrative_title TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    passage_index INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    statement TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (article_key, narrative_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    article_key TEXT NOT NULL REFERENCES articles(key),
    chat_id TEXT NOT NULL,
    narratives TEXT NOT NULL,  -- JSON list of the narrative ids this chat is alerted to
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- sends whose outcome is unknown (crash or timeout after the request left): resent, so
    -- Telegram may show them twice; counted so that every duplicate is accounted for
    interrupted INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    last_error TEXT,
    message_id INTEGER,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (article_key, chat_id)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, not_before);
CREATE INDEX IF NOT EXISTS matches_created ON matches (created_at);
'''

# bot/store.py at schema version 2: what every open created.
V2_SCHEMA = '''
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    etag TEXT,
    last_modified TEXT,
    last_poll_at TEXT,
    last_ok_at TEXT,
    last_error TEXT,
    consecutive_errors INTEGER NOT NULL DEFAULT 0,
    retry_at TEXT,
    paused_at TEXT,
    articles_seen INTEGER NOT NULL DEFAULT 0,
    body_hash TEXT  -- of the last body fully processed: the same bytes again are skipped
);
CREATE TABLE IF NOT EXISTS notices (
    id INTEGER PRIMARY KEY,
    chat_id TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE TABLE IF NOT EXISTS articles (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    url TEXT NOT NULL,
    title TEXT NOT NULL,
    published TEXT,
    seen_at TEXT NOT NULL,
    passages INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    text TEXT,  -- kept (capped) so that a new seed can be backtested on past articles
    language TEXT  -- schema 2: ISO 639 code (declared, configured or guessed)
);
CREATE INDEX IF NOT EXISTS articles_content ON articles (source, content_hash);
CREATE TABLE IF NOT EXISTS matches (
    id INTEGER PRIMARY KEY,
    article_key TEXT NOT NULL REFERENCES articles(key),
    narrative_id TEXT NOT NULL,
    narrative_title TEXT NOT NULL,
    score REAL NOT NULL,
    threshold REAL NOT NULL,
    passage_index INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    statement TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (article_key, narrative_id)
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    article_key TEXT NOT NULL REFERENCES articles(key),
    chat_id TEXT NOT NULL,
    narratives TEXT NOT NULL,  -- JSON list of the narrative ids this chat is alerted to
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    -- sends whose outcome is unknown (crash or timeout after the request left): resent, so
    -- Telegram may show them twice; counted so that every duplicate is accounted for
    interrupted INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    last_error TEXT,
    message_id INTEGER,
    origin_key TEXT,  -- a syndicated copy: sent as "also in" under that article's alert
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (article_key, chat_id)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (status, not_before);
CREATE INDEX IF NOT EXISTS matches_created ON matches (created_at);

CREATE TABLE IF NOT EXISTS volumes (
    narrative_id TEXT NOT NULL,
    hour TEXT NOT NULL,  -- start of the UTC hour the article was published in (see volume_hour)
    source TEXT NOT NULL,
    language TEXT NOT NULL,
    matches INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (narrative_id, hour, source, language)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS volumes_hour ON volumes (hour);
CREATE TABLE IF NOT EXISTS spikes (
    narrative_id TEXT PRIMARY KEY,
    active INTEGER NOT NULL DEFAULT 0,  -- alerted and not calmed down yet: never alerted again
    started_at TEXT,
    calmed_at TEXT,
    checked_at TEXT,
    z REAL,
    window_count INTEGER,
    details TEXT  -- JSON of the spike that was alerted
);
CREATE TABLE IF NOT EXISTS charts (
    id INTEGER PRIMARY KEY,
    png BLOB NOT NULL,
    file_id TEXT,  -- Telegram's id once uploaded: later sends reuse it
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS posts (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,  -- 'spike' or 'digest'
    key TEXT NOT NULL,   -- what it is about: one spike, one digest period
    chat_id TEXT NOT NULL,
    html TEXT NOT NULL,  -- the message, or the photo's caption
    plain TEXT NOT NULL,
    chart_id INTEGER REFERENCES charts(id),
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    interrupted INTEGER NOT NULL DEFAULT 0,
    not_before TEXT,
    last_error TEXT,
    message_id INTEGER,
    created_at TEXT NOT NULL,
    sent_at TEXT,
    UNIQUE (key, chat_id)  -- a spike or a digest period reaches a chat once
);
CREATE INDEX IF NOT EXISTS posts_pending ON posts (status, not_before);
'''

# bot/audience.py at schema version 2: created when the audience was first used.
V2_AUDIENCE = '''
CREATE TABLE IF NOT EXISTS chats (
    chat_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    title TEXT,
    active INTEGER NOT NULL DEFAULT 1,
    reason TEXT,
    joined_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    chat_id TEXT NOT NULL,
    narrative_id TEXT NOT NULL,  -- '*' follows every narrative, present and future
    PRIMARY KEY (chat_id, narrative_id)
);
CREATE TABLE IF NOT EXISTS mutes (
    chat_id TEXT NOT NULL,
    source TEXT NOT NULL,
    until TEXT,                  -- NULL: until unmuted
    muted_by INTEGER,
    PRIMARY KEY (chat_id, source)
);
CREATE TABLE IF NOT EXISTS feedback (
    article_key TEXT NOT NULL,
    narrative_id TEXT NOT NULL,
    user_id INTEGER NOT NULL,
    vote TEXT NOT NULL CHECK (vote IN ('relevant', 'wrong')),
    outbox_id INTEGER,
    created_at TEXT NOT NULL,
    PRIMARY KEY (article_key, narrative_id, user_id)
);
CREATE TABLE IF NOT EXISTS learned_counters (
    narrative_id TEXT NOT NULL,
    text TEXT NOT NULL,
    article_key TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (narrative_id, text)
);
'''

# bot/syndicate.py at schema version 2: created when syndication was first used.
V2_STORIES = '''
CREATE TABLE IF NOT EXISTS stories (
    article_key TEXT PRIMARY KEY,
    narratives TEXT NOT NULL,   -- JSON list of matched narrative ids
    vectors BLOB NOT NULL,      -- float16, STORY_PASSAGES × dim at most
    dim INTEGER NOT NULL,
    seen_at TEXT NOT NULL,
    origin_key TEXT             -- NULL for an origin; else the story it copies
);
CREATE INDEX IF NOT EXISTS stories_seen ON stories (seen_at);
'''

# migration 4 (paused chats), as released.
V4_PAUSED_CHATS = '''
CREATE TABLE IF NOT EXISTS paused_chats (
    chat_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_at TEXT NOT NULL,
    probe_at TEXT NOT NULL,     -- when reachability is checked again
    probes INTEGER NOT NULL DEFAULT 0
);
'''

# migration 5 (sources), as released.
V5_SOURCES = '''
CREATE TABLE IF NOT EXISTS pages (
    url TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    published TEXT,
    fetched_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS pages_fetched ON pages (fetched_at);
CREATE TABLE IF NOT EXISTS stored_feeds (
    name TEXT PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    interval_s REAL NOT NULL,
    kind TEXT,
    origin TEXT NOT NULL,
    added_by TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    added_at TEXT NOT NULL
);
ALTER TABLE feeds ADD COLUMN page_error TEXT;
ALTER TABLE feeds ADD COLUMN page_error_at TEXT;
'''
