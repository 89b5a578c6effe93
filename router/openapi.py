"""The admin API's OpenAPI document, served at /api/v1/openapi.json."""

from __future__ import annotations

from croupier.router import factors, guardrails, listing, rules, webhooks
from croupier.router.context import FIELDS as CONTEXT_FIELDS
from croupier.router.experiments import EXPERIMENT_STATUSES


def _string(rule: rules.Rule, **extra) -> dict:
    """A string schema for a rule; JSON Schema patterns search, so the rule's is anchored."""
    return {"type": "string", "pattern": f"^{rule.pattern.pattern}$", **extra}


_ID = _string(rules.ID)
_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_EXP_OUT = {"description": "the experiment",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Experiment"}}}}


def _json_body(ref: str) -> dict:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _errors(*codes: int) -> dict:
    return {str(c): _ERROR for c in (401, 503, *codes)}


_NUMBER_OR_NULL = {"type": ["number", "null"]}
_INTERVAL_OR_NULL = {"type": ["array", "null"], "items": {"type": "number"}, "minItems": 2, "maxItems": 2,
                     "description": "95% interval; null without views"}
_EXP_PARAM = {"name": "id", "in": "path", "required": True, "schema": _ID}
_VAR_PARAM = {"name": "vid", "in": "path", "required": True, "schema": _ID}

VARIANT = {
    "type": "object", "additionalProperties": False, "required": ["id", "upstream"],
    "properties": {
        "id": _ID,
        "upstream": _string(rules.UPSTREAM, description="host:port NGINX proxies to (must be allowlisted)"),
        "status": {"type": "string", "enum": ["active", "paused"]},
        "name": {"type": "string", "maxLength": 200},
        "prior_alpha": {"type": "number", "minimum": 0.001, "maximum": 1e6},
        "prior_beta": {"type": "number", "minimum": 0.001, "maximum": 1e6},
        "params": {"type": "object", "description": "the page's content parameters"},
        "capacity": {"type": ["integer", "null"], "minimum": 1, "maximum": 1_000_000_000,
                     "description": "at most this many assignments ever get it (web, channels and batches); "
                                    "null: no limit"},
    },
}
VARIANT_PATCH = {**VARIANT, "required": []}
EXPERIMENT = {
    "type": "object", "additionalProperties": False, "required": ["id", "variants"],
    "properties": {
        "id": _ID,
        "name": {"type": "string", "maxLength": 200},
        "host": {"type": "string", "description": "host it owns; empty for any host"},
        "tenant": {"type": "string", "pattern": f"^({rules.ID.pattern.pattern})?$",
                   "description": "the tenant it belongs to; empty for the default tenant"},
        "slots": {"type": "array", "maxItems": 16, "uniqueItems": True, "items": _ID,
                  "description": "names the channels API may use instead of the id (unique per tenant)"},
        "path_prefix": {"type": "string", "pattern": "^/", "maxLength": 201},
        "goal": _string(rules.GOAL),
        "status": {"type": "string", "enum": ["running", "paused", "ended"]},
        "winner": {"type": "string"},
        "control": _string(rules.ARM, description="a variant id, or a factorial experiment's arm (its levels "
                                                  "joined by '_'; default every factor's first level)"),
        "factors": {"type": "object", "maxProperties": factors.MAX_FACTORS,
                    "description": "a factorial experiment: factor name -> level name -> a fragment of the page's "
                                   "params; the first level of each factor is its control; the arms are the "
                                   "allowed combinations, rendered by the one variant declared",
                    "propertyNames": _string(rules.LEVEL),
                    "additionalProperties": {"type": "object", "minProperties": 2,
                                             "maxProperties": factors.MAX_LEVELS,
                                             "propertyNames": _string(rules.LEVEL),
                                             "additionalProperties": {"type": "object"}}},
        "reward": {"description": "what the policy optimises: \"conversion\" (default), \"engaged\" (engaged page "
                              "views), or weights {\"conversion\": c, \"engaged\": e} adding up to 1",
                   "oneOf": [{"type": "string", "enum": ["conversion", "engaged"]},
                             {"type": "object", "additionalProperties": False,
                              "properties": {"conversion": {"type": "number", "minimum": 0, "maximum": 1},
                                             "engaged": {"type": "number", "minimum": 0, "maximum": 1}}}]},
        "guardrails": {"type": "array", "maxItems": guardrails.MAX_GUARDRAILS,
                       "description": "harm a variant may not do against control; a breach caps the variant at "
                                      "min_share (or pauses it) until cleared",
                       "items": {"type": "object", "required": ["metric"], "additionalProperties": False,
                                 "properties": {
                                     "metric": {"type": "string", "enum": list(guardrails.METRICS)},
                                     "direction": {"type": "string", "enum": list(guardrails.DIRECTIONS)},
                                     "threshold": {"type": "number", "minimum": 0},
                                     "relative": {"type": "boolean"},
                                     "min_sample": {"type": "integer", "minimum": 2},
                                     "action": {"type": "string", "enum": list(guardrails.ACTIONS)},
                                     "alpha": {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5}}}},
        "on_drift": {"type": "string", "enum": ["alert", "forget"],
                     "description": "a detected change in an arm's conversion rate: alert, or alert and forget "
                                    "the arm's evidence from before the change"},
        "constraints": {"type": "array", "maxItems": factors.MAX_CONSTRAINTS,
                        "description": "combinations a factorial experiment never shows: each object names a "
                                       "level of two or more factors, excluded together",
                        "items": {"type": "object", "minProperties": 2,
                                  "additionalProperties": _string(rules.LEVEL)}},
        "policy": {"type": "string"},
        "policy_params": {"type": "object"},
        "min_share": {"type": "number", "minimum": 0, "maximum": 1},
        "burn_in": {"type": "integer", "minimum": 0, "maximum": 10000000},
        "holdout": {"type": "number", "minimum": 0, "maximum": 0.5},
        "model_weight": {"type": "number", "minimum": 0, "maximum": 1, "default": 0,
                         "description": "0: the bandit alone; above 0: the trained conversion model's "
                                        "predictions (croupier-model train) join the bandit's priors, "
                                        "per segment where segments are on, with this weight"},
        "segment_keys": {"type": "array", "maxItems": 3, "uniqueItems": True,
                         "description": "context fields whose values split visitors into segments, each with "
                                        "its own bandit (e.g. [\"device\"] or [\"country\", \"device\"])",
                         "items": {"type": "string", "enum": list(CONTEXT_FIELDS)}},
        "variants": {"type": "array", "minItems": 1, "maxItems": 32, "items": {"$ref": "#/components/schemas/Variant"}},
        "updated_at": {"type": "number", "readOnly": True,
                       "description": "seconds since the epoch of the last change, set by the server (0: not "
                                      "known, stored before it was kept); refused in requests"},
    },
}
# The channels API (router/channels.py): API keys, not the admin token.
_CUSTOMER = _string(rules.CUSTOMER)
_CHANNEL_ERRORS = {str(c): _ERROR for c in (400, 401, 403, 404, 409, 503)}
CHANNEL_SCHEMAS = {
    "DecideRequest": {
        "type": "object", "additionalProperties": False, "required": ["customer_id"],
        "description": "experiment or slot (one of them)",
        "properties": {
            "experiment": _ID, "slot": _ID, "customer_id": _CUSTOMER,
            "channel": _string(rules.CHANNEL, description="email, sms, app, banner, ... (echoed back)"),
            "context": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 64},
                        "description": "the customer's context for segmented experiments, with the fields "
                                       "the web path reads (device, source, utm_*, country, city, language, "
                                       "hour, weekday, returning)"},
        },
    },
    "Decision": {
        "type": "object", "required": ["experiment", "variant", "params", "propensity", "probabilities",
                                       "token", "sticky", "reason"],
        "properties": {
            "experiment": _ID, "variant": _ID,
            "params": {"type": "object", "description": "the variant's content parameters"},
            "propensity": {"type": "number", "minimum": 0, "maximum": 1,
                           "description": "the probability the policy gave the chosen variant (logged)"},
            "probabilities": {"type": ["object", "null"], "additionalProperties": {"type": "number"},
                              "description": "every arm's probability when drawn now; null for a stored "
                                             "assignment (they are in its logged stream entry)"},
            "token": {"type": ["string", "null"], "description": "signed assignment, for /conversions; "
                                                                 "null when the experiment is paused or ended"},
            "sticky": {"type": "boolean", "description": "the customer's existing assignment"},
            "reason": {"type": "string", "enum": ["new", "returning", "reassigned", "holdout", "paused", "ended",
                                                  "no_arms"]},
            "channel": {"type": ["string", "null"]},
        },
    },
    "ConversionRequest": {
        "type": "object", "additionalProperties": False,
        "description": "experiment or slot, and token or customer_id (one of each)",
        "properties": {
            "experiment": _ID, "slot": _ID, "customer_id": _CUSTOMER,
            "token": {"type": "string", "maxLength": 512},
            "goal": _string(rules.GOAL, description="default: the experiment's goal"),
            "value": {"type": "number", "minimum": 0, "maximum": 1e9},
            "id": _string(rules.EVENT_ID, description="your event id"),
        },
    },
    "ConversionAccepted": {
        "type": "object", "required": ["experiment", "variant", "goal", "counted"],
        "properties": {"experiment": _ID, "variant": _ID, "goal": {"type": "string"},
                       "counted": {"type": "boolean", "description": "false: already counted for this "
                                                                     "customer and goal"}},
    },
    "PredictRequest": {
        "type": "object", "additionalProperties": False, "description": "experiment or slot (one of them)",
        "properties": {
            "experiment": _ID, "slot": _ID,
            "context": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 64},
                        "description": "the customer's context, read as /decide reads it"},
        },
    },
    "Prediction": {
        "type": "object", "required": ["experiment", "model_version", "variants", "interval", "inference_ms"],
        "properties": {
            "experiment": _ID, "model_version": {"type": "integer", "minimum": 1},
            "trained_at": {"type": "number"}, "goal": {"type": "string"},
            "context": {"type": "object", "description": "the context as the model read it"},
            "variants": {"type": "object", "description": "per active variant: p (predicted conversion "
                         "probability), sd, low and high (95% interval, normal on the logit scale), seen (the "
                         "model was trained on it)", "additionalProperties": {"type": "object"}},
            "interval": {"type": "string"},
            "inference_ms": {"type": "number", "description": "time to predict, measured in the handler"},
        },
    },
}
CHANNEL_PATHS = {
    "/decide": {"post": {
        "summary": "Which variant a customer gets, for channels that are not web pages (sticky per customer)",
        "security": [{"apiKey": []}], "requestBody": _json_body("DecideRequest"),
        "responses": {"200": {"description": "the decision", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Decision"}}}}, **_CHANNEL_ERRORS}}},
    "/conversions": {"post": {
        "summary": "A server-to-server conversion, by token or customer id; counted once per customer and goal",
        "security": [{"apiKey": []}], "requestBody": _json_body("ConversionRequest"),
        "responses": {"202": {"description": "accepted", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConversionAccepted"}}}}, **_CHANNEL_ERRORS}}},
    "/predict": {"post": {
        "summary": "Each variant's predicted conversion probability for a context, from the current conversion "
                   "model (404 no_model: none trained; 409 model_unreadable)",
        "security": [{"apiKey": []}], "requestBody": _json_body("PredictRequest"),
        "responses": {"200": {"description": "the prediction", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Prediction"}}}}, **_CHANNEL_ERRORS}}},
}

# The batch API (router/batch_api.py): the channels API's keys; JSON lines in and out.
_BATCH_QUERY = [
    {"name": "experiment", "in": "query", "required": False, "schema": _ID, "description": "or slot"},
    {"name": "slot", "in": "query", "required": False, "schema": _ID, "description": "or experiment"},
    {"name": "channel", "in": "query", "required": False, "schema": _string(rules.CHANNEL),
     "description": "logged with every assignment"}]
_LINES_SCHEMA = {"schema": {"type": "string", "description": 'one customer a line: {"customer_id": "...", '
                                                            '"context": {...}}'}}
# the body is read as it comes, whatever its declared type
_CUSTOMER_LINES = {"required": True, "content": {"application/x-ndjson": _LINES_SCHEMA, "text/plain": _LINES_SCHEMA}}
_ANSWER_LINES = {"content": {"application/x-ndjson": {"schema": {
    "type": "string", "description": "one JSON object per input line, in order: customer_id, variant, params, "
                                     "propensity, token, reason; or line, field, error"}}}}
_JOB_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 60}}
_BATCH_ERRORS = {str(c): _ERROR for c in (400, 401, 403, 404, 409, 413, 503)}
BATCH_PATHS = {
    "/batches/assign": {"post": {
        "summary": "Assign a customer list (JSON lines), answered as JSON lines, streamed; idempotent per customer",
        "security": [{"apiKey": []}], "parameters": _BATCH_QUERY, "requestBody": _CUSTOMER_LINES,
        "responses": {"200": {"description": "one line per customer", **_ANSWER_LINES}, **_BATCH_ERRORS}}},
    "/batches": {"post": {
        "summary": "Upload a customer list as a job, assigned in the background",
        "security": [{"apiKey": []}], "parameters": _BATCH_QUERY, "requestBody": _CUSTOMER_LINES,
        "responses": {"202": {"description": "the job: id, total, progress and results URLs",
                              "content": {"application/json": {"schema": {"type": "object"}}}},
                      **_BATCH_ERRORS}}},
    "/batches/{id}": {"get": {
        "summary": "A job's progress: status, done/total, new, returning, errors, full, per-variant counts",
        "security": [{"apiKey": []}], "parameters": [_JOB_PARAM],
        "responses": {"200": {"description": "the progress", "content": {"application/json": {
            "schema": {"type": "object"}}}}, **_BATCH_ERRORS}}},
    "/batches/{id}/results": {"get": {
        "summary": "The results of a job's chunks done so far, JSON lines in the list's order",
        "security": [{"apiKey": []}], "parameters": [_JOB_PARAM],
        "responses": {"200": {"description": "one line per customer", **_ANSWER_LINES}, **_BATCH_ERRORS}}},
}

# What requests may send: the server's fields (updated_at) are refused, and an id never changes.
EXPERIMENT_IN = {**EXPERIMENT, "properties": {k: v for k, v in EXPERIMENT["properties"].items() if k != "updated_at"}}
EXPERIMENT_PATCH = {**EXPERIMENT_IN, "required": [],
                    "properties": {k: v for k, v in EXPERIMENT_IN["properties"].items() if k != "id"}}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


LIST_PARAMETERS = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": listing.MAX_LIMIT},
           f"experiments per page; without limit and cursor the whole list comes in one answer, with a "
           f"cursor the default is {listing.DEFAULT_LIMIT}"),
    _query("cursor", {"type": "string", "maxLength": listing.MAX_CURSOR},
           "next_cursor of the previous page, as it is (opaque; it keeps the page's sort and order, and "
           "stays valid when experiments are added or removed)"),
    _query("status", {"type": "string", "enum": list(EXPERIMENT_STATUSES)}, "only experiments in this status"),
    _query("tenant", _string(rules.ID), "only this tenant's experiments ('default': those without a tenant)"),
    _query("q", {"type": "string", "maxLength": listing.MAX_QUERY},
           "experiments whose id, or name (case-insensitively), starts with this"),
    _query("sort", {"type": "string", "enum": list(listing.SORTS), "default": "id"},
           "id; trials or rate (conversions of the goal per trial, over the variants) as this router's "
           "snapshot holds them; updated (updated_at)"),
    _query("order", {"type": "string", "enum": list(listing.ORDERS)},
           "default: asc for id, desc for the others"),
]
LISTED = {**EXPERIMENT, "properties": {
    **EXPERIMENT["properties"],
    "trials": {"type": "integer", "description": "over the variants, from the router's snapshot"},
    "conversions": {"type": "integer", "description": "of the experiment's goal, over the variants"},
    "rate": {"type": "number", "description": "conversions / trials (0 without trials)"}}}
EXPERIMENT_LIST = {"type": "object", "required": ["experiments", "next_cursor", "total"], "properties": {
    "experiments": {"type": "array", "items": {"$ref": "#/components/schemas/ListedExperiment"}},
    "next_cursor": {"type": ["string", "null"], "description": "the next page's cursor; null on the last page"},
    "total": {"type": "integer", "description": "experiments matching the filter and search, on every page"}}}

# Webhooks (router/webhooks.py): where alerts go; docs/alerts.md.
_WEBHOOK_PARAM = {"name": "id", "in": "path", "required": True, "schema": _ID}
_WEBHOOK_OUT = {"description": "the webhook (its secret is never shown)",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Webhook"}}}}
WEBHOOK_IN = {
    "type": "object", "additionalProperties": False, "required": ["id", "url"],
    "properties": {
        "id": _ID,
        "url": {"type": "string", "maxLength": webhooks.MAX_URL, "pattern": "^https?://",
                "description": "http:// or https:// (loopback allowed), no credentials in it"},
        "format": {"type": "string", "enum": list(webhooks.FORMATS), "default": "json",
                   "description": "json: the generic alert document; slack: a Slack incoming-webhook message"},
        "secret": _string(webhooks.SECRET, writeOnly=True,
                          description="HMAC-SHA256 key for X-Croupier-Signature; never returned; omit to send "
                                      "unsigned"),
        "tenant": {"type": "string", "pattern": f"^({rules.ID.pattern.pattern}|\\*)?$",
                   "description": "alerts of this tenant's experiments; empty: the default tenant; '*': every "
                                  "tenant"},
        "experiment": {"type": "string", "pattern": f"^({rules.ID.pattern.pattern})?$",
                       "description": "only this experiment's alerts; empty: every experiment"},
        "kinds": {"type": "array", "maxItems": webhooks.MAX_KINDS, "uniqueItems": True,
                  "items": _string(webhooks.KIND), "description": "only these kinds (srm, guardrail, drift, ...); "
                                                                  "empty: every kind"},
    },
}
WEBHOOK = {**WEBHOOK_IN, "additionalProperties": True, "properties": {
    **{k: v for k, v in WEBHOOK_IN["properties"].items() if k != "secret"},
    "has_secret": {"type": "boolean", "description": "whether deliveries are signed"}}}
WEBHOOK_PATHS = {
    "/webhooks": {
        "get": {"summary": "List the webhooks alerts are delivered to", "responses": {
            "200": {"description": "the webhooks", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"webhooks": {"type": "array", "items": {
                    "$ref": "#/components/schemas/Webhook"}}}}}}}, **_errors()}},
        "post": {"summary": "Add a webhook (to change one, delete it and add it again)",
                 "requestBody": _json_body("WebhookIn"),
                 "responses": {"201": _WEBHOOK_OUT, **_errors(409, 422)}},
    },
    "/webhooks/{id}": {
        "parameters": [_WEBHOOK_PARAM],
        "get": {"summary": "Get a webhook", "responses": {"200": _WEBHOOK_OUT, **_errors(404)}},
        "delete": {"summary": "Remove a webhook (alerts not yet delivered to it are not sent to it)",
                   "responses": {"204": {"description": "removed"}, **_errors(404)}},
    },
}

OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Croupier admin API", "version": "1",
             "description": "Experiments, variants and live statistics. Bearer token: CROUPIER_ADMIN_TOKEN."},
    "servers": [{"url": "/api/v1"}],
    "security": [{"bearer": []}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "apiKey": {"type": "http", "scheme": "bearer",
                                       "description": "a tenant's key from CROUPIER_API_KEYS"}},
        "schemas": {
            "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
            "Variant": VARIANT,
            "VariantPatch": VARIANT_PATCH,
            "Experiment": EXPERIMENT,
            "ExperimentIn": EXPERIMENT_IN,
            "ExperimentPatch": EXPERIMENT_PATCH,
            "ListedExperiment": LISTED,
            "ExperimentList": EXPERIMENT_LIST,
            "Promote": {"type": "object", "required": ["variant"], "properties": {"variant": _ID}},
            **CHANNEL_SCHEMAS,
            "Webhook": WEBHOOK,
            "WebhookIn": WEBHOOK_IN,
            "Stats": {"type": "object", "properties": {
                "experiment": {"type": "string"}, "status": {"type": "string"}, "policy": {"type": "string"},
                "variants": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "trials": {"type": "integer"}, "conversions": {"type": "integer"},
                    "rate": {"type": "number"}, "ci95": {"type": "array", "items": {"type": "number"}},
                    "p_best": {"type": "number"}, "expected_loss": {"type": "number"},
                    "share": {"type": "number"}, "engagement": {"$ref": "#/components/schemas/Engagement"},
                    "capacity": {"type": ["object", "null"], "description": "a capped variant's units: capacity, "
                                 "used, reserved (held by routers, not yet used), remaining, full; null without "
                                 "a cap (docs/campaigns.md)", "properties": {
                                     "capacity": {"type": "integer"}, "used": {"type": "integer"},
                                     "reserved": {"type": "integer"}, "remaining": {"type": "integer"},
                                     "full": {"type": "boolean"}}}}}},
                "segments": {"type": "object", "description": "experiments with segment_keys: per segment "
                             "(\"device=mobile\"), per variant: trials, conversions, rate, ci95, p_best, share",
                             "additionalProperties": {"type": "array", "items": {"type": "object"}}},
                "engagement": {"type": "object", "description": "how engagement is counted: active time per view "
                               "capped at active_cap_seconds, engaged from engaged_seconds, scroll_buckets of the "
                               "histogram", "properties": {
                                   "active_cap_seconds": {"type": "integer"}, "engaged_seconds": {"type": "integer"},
                                   "scroll_buckets": {"type": "integer"}}},
                "engagement_segments": {"type": "object", "description": "experiments with segment_keys: per "
                                        "segment of segments, per variant: its id and its Engagement",
                                        "additionalProperties": {"type": "array", "items": {"allOf": [
                                            {"$ref": "#/components/schemas/Engagement"},
                                            {"type": "object", "properties": {"id": {"type": "string"}}}]}}},
                "model": {"$ref": "#/components/schemas/Model",
                          "description": "when model_weight > 0 and a model is trained: the model in use"},
                "factors": {"type": "array", "description": "a factorial experiment: per factor, per level, the "
                            "model's rate with its 95% interval, p_best among the factor's levels, trials and "
                            "conversions", "items": {"type": "object"}},
                "interactions": {"type": "array", "items": {"type": "object"},
                                 "description": "a factorial experiment: each pair of levels' interaction on the "
                                                "logit scale (effect, low, high) and as a lift in the odds"},
                "best": {"type": "object", "description": "a factorial experiment: the combination with the highest "
                         "posterior mean rate (arm, names, rate, low, high)"},
                "heatmaps": {"type": "array", "items": {"type": "object"},
                             "description": "a factorial experiment: per pair of factors, the model's rate over "
                                            "their levels (null where a constraint excludes the pair)"}}},
            "Engagement": {"type": "object", "description": "page views that reported engagement, and what "
                           "they did (docs/api.md#engagement)", "properties": {
                "views": {"type": "integer"}, "engaged": {"type": "integer"}, "bounces": {"type": "integer"},
                "engaged_rate": _NUMBER_OR_NULL, "engaged_ci95": _INTERVAL_OR_NULL,
                "bounce_rate": _NUMBER_OR_NULL, "bounce_ci95": _INTERVAL_OR_NULL,
                "active_seconds_mean": _NUMBER_OR_NULL,
                "active_seconds_ci95": {**_INTERVAL_OR_NULL, "description": "null below two views"},
                "scroll_histogram": {"type": "array", "items": {"type": "integer"},
                                     "description": "views by deepest scroll, in buckets of equal width"},
                "scroll_median": _NUMBER_OR_NULL, "clicks": {"type": "integer"},
                "clicks_per_view": _NUMBER_OR_NULL}},
            "Model": {"type": "object", "properties": {
                "version": {"type": "integer"}, "trained_at": {"type": "number"}, "goal": {"type": "string"},
                "rows": {"type": "integer", "description": "assignments it was trained on"},
                "weight": {"type": "number"}, "model_weight": {"type": "number"}, "in_use": {"type": "boolean"},
                "arms": {"type": "object", "description": "per variant: predicted rate, its standard deviation, "
                                                          "and whether the model saw the variant",
                         "additionalProperties": {"type": "object", "properties": {
                             "rate": {"type": "number"}, "sd": {"type": "number"}, "seen": {"type": "boolean"}}}}}},
            "ModelPrior": {"type": "object", "properties": {
                "prior_alpha": {"type": "number"}, "prior_beta": {"type": "number"}, "rate": {"type": "number"},
                "weight": {"type": "number", "description": "prior_alpha + prior_beta: at most strength"},
                "strength": {"type": "number"}, "version": {"type": "integer"}}},
        },
    },
    "paths": {
        "/experiments": {
            "get": {"summary": "List experiments: a page of them, filtered, searched and sorted",
                    "parameters": LIST_PARAMETERS,
                    "responses": {"200": {"description": "a page of experiments", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/ExperimentList"}}}}, **_errors(422)}},
            "post": {"summary": "Create an experiment", "requestBody": _json_body("ExperimentIn"),
                     "responses": {"201": _EXP_OUT, **_errors(409, 422)}},
        },
        "/experiments/{id}": {
            "parameters": [_EXP_PARAM],
            "get": {"summary": "Get an experiment", "responses": {"200": _EXP_OUT, **_errors(404)}},
            "patch": {"summary": "Change an experiment", "requestBody": _json_body("ExperimentPatch"),
                      "responses": {"200": _EXP_OUT, **_errors(404, 422)}},
            "delete": {"summary": "Remove an experiment (its statistics stay)",
                       "responses": {"204": {"description": "removed"}, **_errors(404)}},
        },
        "/experiments/{id}/promote": {
            "parameters": [_EXP_PARAM],
            "post": {"summary": "Send all traffic to one variant and end the experiment",
                     "requestBody": _json_body("Promote"), "responses": {"200": _EXP_OUT, **_errors(404, 422)}},
        },
        "/experiments/{id}/stats": {
            "parameters": [_EXP_PARAM],
            "get": {"summary": "Per-variant results and current traffic shares", "responses": {
                "200": {"description": "stats", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Stats"}}}}, **_errors(404)}},
        },
        "/experiments/{id}/timeseries": {
            "parameters": [_EXP_PARAM],
            "get": {"summary": "Per time bucket and variant: trials, expected trials, conversions, views, clicks",
                    "responses": {"200": {"description": "time series"}, **_errors(404)}},
        },
        "/experiments/{id}/model": {
            "parameters": [_EXP_PARAM],
            "get": {"summary": "The trained conversion model: version and each variant's predicted rate",
                    "responses": {"200": {"description": "the model", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Model"}}}}, **_errors(404)}},
            "delete": {"summary": "Remove the trained model (the bandit's priors alone decide again)",
                       "responses": {"204": {"description": "removed"}, **_errors(404)}},
        },
        "/experiments/{id}/model/prior": {
            "parameters": [_EXP_PARAM, {"name": "strength", "in": "query", "required": False,
                                        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e6,
                                                   "default": 200},
                                        "description": "at most that many visitors' worth"}],
            "get": {"summary": "A Beta prior for a new variant from the model's prediction",
                    "responses": {"200": {"description": "prior_alpha and prior_beta", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/ModelPrior"}}}},
                        **_errors(404, 422)}},
        },
        "/experiments/{id}/guardrails": {
            "parameters": [_EXP_PARAM],
            "get": {"summary": "Each guardrail, and per variant but control its verdict now (variant - control, "
                               "its always-valid interval, the samples) and the breach it holds with its evidence",
                    "responses": {"200": {"description": "guardrails and verdicts", "content": {"application/json": {
                        "schema": {"type": "object", "required": ["experiment", "control", "guardrails", "variants"],
                                   "properties": {"experiment": {"type": "string"}, "control": {"type": "string"},
                                                  "guardrails": {"type": "array", "items": {"type": "object"}},
                                                  "variants": {"type": "array", "items": {"type": "object"}}}}}}},
                                  **_errors(404)}},
        },
        "/experiments/{id}/guardrails/{variant}": {
            "parameters": [_EXP_PARAM, {"name": "variant", "in": "path", "required": True,
                                        "schema": _string(rules.ARM)}],
            "delete": {"summary": "Clear a variant's guardrail breach: it competes again, and is not breached again",
                       "responses": {"204": {"description": "cleared"}, **_errors(404)}},
        },
        "/experiments/{id}/strategies": {
            "parameters": [_EXP_PARAM, _query("events", {"type": "integer", "minimum": 1, "maximum": 50_000,
                                                         "default": 50_000},
                                              "compare on the stream's latest this many events")],
            "get": {"summary": "Strategy comparison: what Thompson sampling, UCB1, epsilon-greedy, each fixed variant, "
                               "the even split and the model's choice per visitor would have converted on the logged "
                               "traffic, each with its interval (computed off the request path, kept a minute)",
                    "responses": {"200": {"description": "the strategies, in the order adaptive, fixed, model",
                                          "content": {"application/json": {"schema": {
                                              "type": "object", "required": ["experiment", "strategies"],
                                              "properties": {
                                                  "experiment": {"type": "string"}, "events": {"type": "integer"},
                                                  "assignments": {"type": "integer"},
                                                  "observed": {"type": ["object", "null"]},
                                                  "cached": {"type": "boolean"}, "age": {"type": "number"},
                                                  "strategies": {"type": "array", "items": {
                                                      "type": "object", "properties": {
                                                          "name": {"type": "string"}, "label": {"type": "string"},
                                                          "kind": {"type": "string",
                                                                   "enum": ["adaptive", "fixed", "model"]},
                                                          "value": {"type": "number"}, "low": {"type": "number"},
                                                          "high": {"type": "number"},
                                                          "n_effective": {"type": "number"},
                                                          "estimator": {"type": "string"}}}}}}}}},
                                  **_errors(400, 404, 422)}},
        },
        "/experiments/{id}/alerts": {
            "parameters": [_EXP_PARAM],
            "get": {"summary": "The experiment's latest alerts (srm, guardrail, drift, ...), newest first, at most 50",
                    "responses": {"200": {"description": "alerts as raised; a drift's details hold changed_at "
                                                         "(the start of the bucket where the new rate begins), "
                                                         "rate_before, rate_after and relative_change",
                                          "content": {"application/json": {"schema": {
                                              "type": "object", "required": ["experiment", "alerts"], "properties": {
                                                  "experiment": {"type": "string"},
                                                  "alerts": {"type": "array", "items": {
                                                      "type": "object", "properties": {
                                                          "id": {"type": "string"}, "kind": {"type": "string"},
                                                          "variant": {"type": "string"}, "time": {"type": "number"},
                                                          "summary": {"type": "string"},
                                                          "details": {"type": "object"}}}}}}}}},
                                  **_errors(404)}},
        },
        "/experiments/{id}/variants": {
            "parameters": [_EXP_PARAM],
            "post": {"summary": "Add a variant", "requestBody": _json_body("Variant"),
                     "responses": {"201": _EXP_OUT, **_errors(404, 422)}},
        },
        "/experiments/{id}/variants/{vid}": {
            "parameters": [_EXP_PARAM, _VAR_PARAM],
            "patch": {"summary": "Change a variant (for example pause it)", "requestBody": _json_body("VariantPatch"),
                      "responses": {"200": _EXP_OUT, **_errors(404, 422)}},
            "delete": {"summary": "Remove a variant", "responses": {"204": {"description": "removed"},
                                                                    **_errors(404, 422)}},
        },
        **CHANNEL_PATHS,
        **BATCH_PATHS,
        **WEBHOOK_PATHS,
    },
}
