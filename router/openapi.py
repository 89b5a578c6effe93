"""The admin API's OpenAPI document, served at /api/v1/openapi.json."""

from __future__ import annotations

from router import rules
from router.context import FIELDS as CONTEXT_FIELDS


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
        "control": _ID,
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
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}},
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
}

EXPERIMENT_PATCH = {**EXPERIMENT, "required": [],
                    "properties": {k: v for k, v in EXPERIMENT["properties"].items() if k != "id"}}

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
            "ExperimentPatch": EXPERIMENT_PATCH,
            "Promote": {"type": "object", "required": ["variant"], "properties": {"variant": _ID}},
            **CHANNEL_SCHEMAS,
            "Stats": {"type": "object", "properties": {
                "experiment": {"type": "string"}, "status": {"type": "string"}, "policy": {"type": "string"},
                "variants": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "trials": {"type": "integer"}, "conversions": {"type": "integer"},
                    "rate": {"type": "number"}, "ci95": {"type": "array", "items": {"type": "number"}},
                    "p_best": {"type": "number"}, "expected_loss": {"type": "number"},
                    "share": {"type": "number"}}}},
                "segments": {"type": "object", "description": "experiments with segment_keys: per segment "
                             "(\"device=mobile\"), per variant: trials, conversions, rate, ci95, p_best, share",
                             "additionalProperties": {"type": "array", "items": {"type": "object"}}},
                "model": {"$ref": "#/components/schemas/Model",
                          "description": "when model_weight > 0 and a model is trained: the model in use"}}},
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
            "get": {"summary": "List experiments", "responses": {"200": {"description": "experiments"},
                                                                  **_errors()}},
            "post": {"summary": "Create an experiment", "requestBody": _json_body("Experiment"),
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
    },
}
