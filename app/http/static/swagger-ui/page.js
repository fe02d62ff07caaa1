/* The service's own API reference page: Swagger UI over this server's OpenAPI document. The page has no
   inline script (its Content-Security-Policy allows scripts from this origin only): the document's URL
   and the server's root path come from the data- attributes of #swagger-ui. Nothing is loaded from
   another host: the online validator is off, and the URL is not taken from the query string.

   The token given under "Authorize" is sent as "Authorization: Token <key>"; a bare key gets the
   "Token " prefix added, so pasting either works ("Bearer <JWT>" is sent as typed). It lasts as long as
   the page (not stored). Without one, a session signed in on this origin (POST /api/auth/login/, which can
   be tried here) is used: requests carry this origin's cookies, and those that change something the
   X-CSRFToken header a session needs, read from the csrftoken cookie. */
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");
  if (typeof window.SwaggerUIBundle !== "function") {
    root.textContent = "Swagger UI's script did not load: reload the page.";
    return;
  }
  var specUrl = root.getAttribute("data-openapi-url") || "/openapi.json";
  var rootPath = root.getAttribute("data-root-path") || "";
  var specAbsolute = new URL(specUrl, window.location.href).href;

  /* "Token abc", "token  abc" and "abc" all mean "Token abc"; anything else with a scheme is left as typed. */
  function authorization(value) {
    var text = String(value == null ? "" : value).trim();
    var match = /^token\s+(\S+)$/i.exec(text);
    if (match) return "Token " + match[1];
    if (text && !/\s/.test(text)) return "Token " + text;
    return text;
  }

  var SAFE_METHODS = { GET: true, HEAD: true, OPTIONS: true, TRACE: true };

  /* The value of a cookie of this origin ("" when there is none). */
  function cookie(name) {
    var parts = document.cookie ? document.cookie.split(/;\s*/) : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (eq > 0 && parts[i].slice(0, eq) === name) {
        try {
          return decodeURIComponent(parts[i].slice(eq + 1));
        } catch (e) {
          return parts[i].slice(eq + 1);
        }
      }
    }
    return "";
  }

  function requestInterceptor(request) {
    var headers = request.headers || {};
    var hasCsrf = false;
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() === "authorization") headers[name] = authorization(headers[name]);
      if (name.toLowerCase() === "x-csrftoken") hasCsrf = true;
    });
    var csrf = cookie("csrftoken");
    if (csrf && !hasCsrf && !SAFE_METHODS[String(request.method || "GET").toUpperCase()]) {
      headers["X-CSRFToken"] = csrf; /* a session's unsafe requests need it; ignored with a token */
    }
    request.headers = headers;
    request.credentials = "same-origin"; /* this origin's session cookie, never another site's */
    return request;
  }

  /* The document has no "servers": Swagger UI then sends requests to this origin's root. Behind a
     path prefix (the ASGI root path), say so, or "Try it out" would miss the prefix. */
  function responseInterceptor(response) {
    if (!rootPath || response.url !== specAbsolute || typeof response.text !== "string") return response;
    try {
      var doc = JSON.parse(response.text);
      if (doc && typeof doc === "object" && !doc.servers) {
        doc.servers = [{ url: rootPath }];
        response.text = JSON.stringify(doc);
        response.body = response.obj = doc;
      }
    } catch (e) {
      /* not JSON: Swagger UI reports it */
    }
    return response;
  }

  root.textContent = "";
  window.ui = window.SwaggerUIBundle({
    url: specUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    queryConfigEnabled: false,
    persistAuthorization: false,
    displayRequestDuration: true,
    filter: true,
    requestInterceptor: requestInterceptor,
    responseInterceptor: responseInterceptor,
  });
})();
