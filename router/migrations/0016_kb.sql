-- Knowledge base for self-service (issue 13 §4): articles leads and admins write in /admin/kb, served
-- at /help, suggested while customers type, and the counts that make the deflection rate.

-- An article in one language. The slug is its address (/help/{slug}), fixed at creation so links in
-- sent replies and acks keep working; articles are unpublished, never deleted, so their counts stay.
-- `terms` are the search terms of title, topic, tags and body (router.core.search, CJK bigrams);
-- `title_terms` those of title, topic and tags alone, which weigh more when ranking.
CREATE TABLE kb_articles (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND length(slug) <= 100),
    title        text NOT NULL CHECK (btrim(title) <> ''),
    body         text NOT NULL,
    language     text NOT NULL CHECK (language <> ''),
    topic        text CHECK (topic <> ''),
    tags         text[] NOT NULL DEFAULT '{}',
    published    boolean NOT NULL DEFAULT false,
    terms        text[] NOT NULL DEFAULT '{}',
    title_terms  text[] NOT NULL DEFAULT '{}',
    created_by   bigint REFERENCES agents(id),
    updated_by   bigint REFERENCES agents(id),
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
-- Suggestions look up published articles sharing a term with the query.
CREATE INDEX kb_articles_terms ON kb_articles USING gin (terms) WHERE published;

-- "This solved my problem" (solved = true) from the chat widget, the web form or /help.
-- Deflection rate = solved / shown (kb_shown) over the same period.
CREATE TABLE kb_feedback (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    article_id  bigint NOT NULL REFERENCES kb_articles(id),
    source      text NOT NULL CHECK (source IN ('chat', 'webform', 'help')),
    solved      boolean NOT NULL,
    created_at  timestamptz NOT NULL
);
CREATE INDEX kb_feedback_created ON kb_feedback (created_at);
CREATE INDEX kb_feedback_article ON kb_feedback (article_id, created_at);

-- How often each article was shown as a suggestion, per source and UTC day: one counter row, not a
-- row per keystroke. A visitor seeing the same article again within 30 minutes counts once.
CREATE TABLE kb_shown (
    article_id  bigint NOT NULL REFERENCES kb_articles(id),
    source      text NOT NULL CHECK (source IN ('chat', 'webform', 'help')),
    day         date NOT NULL,
    shown       bigint NOT NULL CHECK (shown >= 0),
    PRIMARY KEY (article_id, source, day)
);
CREATE INDEX kb_shown_day ON kb_shown (day);
