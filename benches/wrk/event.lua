-- One native event per request, as a busy agent posts them.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"tool.call","attributes":{"tool":"web_search","ms":412}}'
