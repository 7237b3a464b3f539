/// The OpenAPI 3.1 document of spec/serve.md's routes, served at `/openapi.json`. ServerTests checks
/// that every path and method here is routed and that every route is here.
enum OpenAPI {
    static let document = #"""
        {
          "openapi": "3.1.0",
          "info": {"title": "castle serve", "version": "1"},
          "components": {
            "parameters": {
              "account": {"name": "X-Castle-Account", "in": "header", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"}},
              "orderID": {"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 0}},
              "symbol": {"name": "symbol", "in": "path", "required": true, "schema": {"type": "string"}},
              "limit": {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
            },
            "schemas": {
              "Decimal": {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]*[1-9])?$"},
              "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string", "enum": ["malformed", "invalid", "unauthenticated", "unknown_order", "unknown_symbol", "not_found", "duplicate_client_order_id", "duplicate_id", "too_large", "rate_limited", "not_ready", "internal"]}, "message": {"type": "string"}}}, "events": {"type": "array", "items": {"type": "object"}}}},
              "NewOrder": {"type": "object", "additionalProperties": false, "required": ["symbol", "side", "qty"], "properties": {"symbol": {"type": "string"}, "side": {"enum": ["buy", "sell"]}, "type": {"enum": ["limit", "market"]}, "price": {"$ref": "#/components/schemas/Decimal"}, "qty": {"$ref": "#/components/schemas/Decimal"}, "tif": {"enum": ["gtc", "ioc", "fok", "post_only"]}, "stp": {"enum": ["cancel_taker", "cancel_maker", "cancel_both", "none"]}, "client_order_id": {"type": "string", "minLength": 1, "maxLength": 64}}},
              "Amend": {"type": "object", "additionalProperties": false, "properties": {"price": {"$ref": "#/components/schemas/Decimal"}, "qty": {"$ref": "#/components/schemas/Decimal"}}},
              "Placed": {"type": "object", "required": ["id", "status", "remaining", "events"], "properties": {"id": {"type": "integer"}, "client_order_id": {"type": ["string", "null"]}, "status": {"enum": ["open", "filled", "canceled", "rejected"]}, "remaining": {"$ref": "#/components/schemas/Decimal"}, "events": {"type": "array", "items": {"type": "object"}}}},
              "Events": {"type": "object", "required": ["id", "events"], "properties": {"id": {"type": "integer"}, "events": {"type": "array", "items": {"type": "object"}}}}
            },
            "responses": {
              "Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
          },
          "paths": {
            "/v1/orders": {
              "post": {"summary": "Place an order; answered once durable and matched", "parameters": [{"$ref": "#/components/parameters/account"}], "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewOrder"}}}}, "responses": {"429": {"$ref": "#/components/responses/Error"}, "201": {"description": "placed", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Placed"}}}}, "200": {"description": "an idempotent repeat of the same client_order_id"}, "400": {"$ref": "#/components/responses/Error"}, "401": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}, "409": {"$ref": "#/components/responses/Error"}, "413": {"$ref": "#/components/responses/Error"}, "503": {"$ref": "#/components/responses/Error"}}},
              "get": {"summary": "The account's open orders", "parameters": [{"$ref": "#/components/parameters/account"}, {"name": "status", "in": "query", "schema": {"enum": ["open"]}}], "responses": {"429": {"$ref": "#/components/responses/Error"}, "200": {"description": "orders"}, "401": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/orders/{id}": {
              "delete": {"summary": "Cancel an open order", "parameters": [{"$ref": "#/components/parameters/account"}, {"$ref": "#/components/parameters/orderID"}], "responses": {"429": {"$ref": "#/components/responses/Error"}, "200": {"description": "canceled", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Events"}}}}, "404": {"$ref": "#/components/responses/Error"}}},
              "patch": {"summary": "Amend an open order (qty: the new remaining quantity)", "parameters": [{"$ref": "#/components/parameters/account"}, {"$ref": "#/components/parameters/orderID"}], "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Amend"}}}}, "responses": {"429": {"$ref": "#/components/responses/Error"}, "200": {"description": "amended", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Events"}}}}, "400": {"$ref": "#/components/responses/Error"}, "404": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/fills": {
              "get": {"summary": "The account's fills", "parameters": [{"$ref": "#/components/parameters/account"}, {"name": "after_seq", "in": "query", "schema": {"type": "integer", "minimum": 0}}, {"$ref": "#/components/parameters/limit"}], "responses": {"429": {"$ref": "#/components/responses/Error"}, "200": {"description": "fills"}, "401": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/book/{symbol}": {
              "get": {"summary": "Aggregated levels, best first", "parameters": [{"$ref": "#/components/parameters/symbol"}, {"name": "depth", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}], "responses": {"200": {"description": "the book"}, "404": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/trades/{symbol}": {
              "get": {"summary": "Recent trades, newest first", "parameters": [{"$ref": "#/components/parameters/symbol"}, {"$ref": "#/components/parameters/limit"}], "responses": {"200": {"description": "trades"}, "404": {"$ref": "#/components/responses/Error"}}}
            },
            "/v1/ticker": {
              "get": {"summary": "Best bid and ask, last price and volume of every symbol", "responses": {"200": {"description": "tickers"}}}
            },
            "/v1/candles/{symbol}": {
              "get": {"summary": "OHLCV bars", "parameters": [{"$ref": "#/components/parameters/symbol"}, {"name": "interval", "in": "query", "schema": {"type": "string", "default": "1m"}}, {"$ref": "#/components/parameters/limit"}], "responses": {"200": {"description": "candles"}, "404": {"$ref": "#/components/responses/Error"}}}
            },
            "/health": {"get": {"summary": "Liveness", "responses": {"200": {"description": "ok"}}}},
            "/ready": {"get": {"summary": "Readiness: store, migrations, matcher (active or standby) and its lag, region", "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus text format 0.0.4", "responses": {"200": {"description": "metrics"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}
          }
        }
        """#
}
