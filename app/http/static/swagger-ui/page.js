/* The service's own API reference page: Swagger UI over this server's OpenAPI document. The page has no
   inline script (its Content-Security-Policy allows scripts from this origin only): the document's URL
   and the server's root path come from the data- attributes of #swagger-ui. Nothing is loaded from
   another host: the online validator is off, and the URL is not taken from the query string.

   The token given under "Authorize" is sent as "Authorization: Token <key>"; a bare key gets the
   "Token " prefix added, so pasting either works. It lasts as long as the page (not stored). */
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

  function requestInterceptor(request) {
    var headers = request.headers || {};
    Object.keys(headers).forEach(function (name) {
      if (name.toLowerCase() === "authorization") headers[name] = authorization(headers[name]);
    });
    request.credentials = "omit"; /* the API reads tokens, never cookies */
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
