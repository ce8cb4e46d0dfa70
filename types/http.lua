---@meta http
-- Editor types for the `http` module (lua/http_lib.c). A goroutine waiting
-- for a response is parked. Snippets sent over HTTP have `http` only when
-- the server runs with --http-allow, and only for those hosts.

---@class http.Options
---@field timeout? number seconds, fractions allowed (default 30)
---@field headers? table<string, string>

---@class http.Request: http.Options
---@field url string
---@field method? string default "GET", or "POST" when there is a body
---@field body? string

---@class http.Response
---@field status_code integer
---@field status string the status line, e.g. "200 OK"
---@field body string
---@field headers table<string, string> names in lowercase; repeated ones joined with ", "
---@field success boolean a 2xx status

---HTTP and HTTPS requests on libcurl. A transport failure (refused, DNS,
---timeout, a response over 16 MiB, a host not allowed) returns `nil, err`.
---@class httplib
http = {}

---@param url string
---@param options? http.Options
---@return http.Response|nil
---@return string? err "curl: Couldn't connect to server (...)", "http: host 'x' is not allowed (see --http-allow)", ...
function http.get(url, options) end

---@param url string
---@param body? string
---@param options? http.Options
---@return http.Response|nil
---@return string? err
function http.post(url, body, options) end

---@param request http.Request
---@return http.Response|nil
---@return string? err
function http.request(request) end

return http
