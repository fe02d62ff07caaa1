/* The service's own GraphiQL page: GraphiQL with a token bar. The token is kept in this browser's
   localStorage and sent as "Authorization: Token <key>" with every operation, introspection included;
   an Authorization header typed in GraphiQL's header editor takes precedence. Without a token, a session
   signed in on this origin (POST /api/auth/login/: the sessionid cookie) is used: requests carry the
   cookies (same origin only) and the X-CSRFToken header the server asks of a session's POSTs, read from the
   csrftoken cookie. Queries and mutations go over HTTP; subscriptions over a WebSocket to /graphql
   (graphql-transport-ws). Nothing is loaded from another host. */
(function () {
  "use strict";

  var STORAGE_KEY = "ikl.graphiql.token";
  var ENDPOINT = window.location.origin + window.location.pathname;
  /* who a session signed in as: /api/auth/me/ beside /graphql (under the same path prefix, if any) */
  var ME = ENDPOINT.replace(/graphql\/?$/, "api/auth/me/");
  var DEFAULT_QUERY = [
    "# Paste an API token in the bar above (`ikl create_token <username>` prints one),",
    "# then run the query with Ctrl-Enter or the play button.",
    "{",
    "  incidents(pageSize: 5) {",
    "    totalCount",
    "    results {",
    "      name",
    "      title",
    "      severity",
    "      status",
    "    }",
    "  }",
    "}",
    "",
  ].join("\n");
  var root = document.getElementById("graphiql");

  if (typeof React === "undefined" || typeof ReactDOM === "undefined" || typeof GraphiQL === "undefined") {
    root.textContent = "GraphiQL's scripts did not load: reload the page.";
    return;
  }
  var h = React.createElement;

  function readToken() {
    try {
      return window.localStorage.getItem(STORAGE_KEY) || "";
    } catch (e) {
      return "";
    }
  }

  function writeToken(token) {
    try {
      if (token) window.localStorage.setItem(STORAGE_KEY, token);
      else window.localStorage.removeItem(STORAGE_KEY);
    } catch (e) {
      /* storage disabled: the token lasts as long as the page */
    }
  }

  /* The value of a cookie of this origin ("" when there is none): the session's CSRF token is in csrftoken. */
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

  /* "Token abc", "abc" and surrounding blanks all mean the key "abc". */
  function normalise(raw) {
    return String(raw || "").trim().replace(/^token\s+/i, "").trim();
  }

  /* Whether the operation GraphiQL runs is a subscription: the named one, else the document's first. */
  function isSubscription(params) {
    var text = String(params.query || "").replace(/#[^\n]*/g, "");
    var found = text.match(/\b(query|mutation|subscription)\b\s*([_A-Za-z][_0-9A-Za-z]*)?/g) || [];
    for (var i = 0; i < found.length; i++) {
      var parts = found[i].split(/\s+/);
      if (!params.operationName || parts[1] === params.operationName) return parts[0] === "subscription";
    }
    return false;
  }

  /* A subscription over the graphql-transport-ws protocol (schema/ws.py) on this same origin, the token in
     connection_init (without one, the session's CSRF token: the browser sends the session cookie with the
     upgrade): an observable GraphiQL shows result by result. One socket per subscription, closed when it
     completes or GraphiQL stops it. */
  function subscribe(params, token, typedAuth) {
    return {
      subscribe: function (observer) {
        var url = ENDPOINT.replace(/^http/, "ws");
        var socket = new WebSocket(url, "graphql-transport-ws");
        var done = false;
        function finish(error) {
          if (done) return;
          done = true;
          if (error) observer.error(error);
          else observer.complete();
          if (socket.readyState <= 1) socket.close(1000, "Normal Closure");
        }
        socket.onopen = function () {
          var auth = typedAuth || (token ? "Token " + token : "");
          var csrf = cookie("csrftoken");
          var payload = auth ? { Authorization: auth } : csrf ? { "X-CSRFToken": csrf } : {};
          socket.send(JSON.stringify({ type: "connection_init", payload: payload }));
        };
        socket.onmessage = function (event) {
          var message;
          try {
            message = JSON.parse(event.data);
          } catch (e) {
            return finish(new Error("Malformed message from the server"));
          }
          if (message.type === "connection_ack") {
            socket.send(JSON.stringify({ type: "subscribe", id: "1", payload: params }));
          } else if (message.type === "next") {
            observer.next(message.payload);
          } else if (message.type === "error") {
            observer.next({ errors: message.payload });
            finish();
          } else if (message.type === "complete") {
            finish();
          } else if (message.type === "ping") {
            socket.send(JSON.stringify({ type: "pong", payload: message.payload }));
          }
        };
        socket.onclose = function (event) {
          if (!done && event.code !== 1000) {
            observer.next({ errors: [{ message: "Connection closed: " + event.code + " " + (event.reason ||
              (event.code === 4403 ? "Forbidden: paste a valid API token in the bar above, or sign in" : "")) }] });
          }
          finish();
        };
        return {
          unsubscribe: function () {
            if (!done && socket.readyState === 1) socket.send(JSON.stringify({ type: "complete", id: "1" }));
            finish();
          },
        };
      },
    };
  }

  function makeFetcher(token, onStatus) {
    return function fetcher(params, opts) {
      if (isSubscription(params)) {
        var typed = (opts && opts.headers) || {};
        var typedAuth = Object.keys(typed).filter(function (n) { return n.toLowerCase() === "authorization"; })
          .map(function (n) { return String(typed[n]); })[0];
        return subscribe(params, token, typedAuth);
      }
      var headers = { "Content-Type": "application/json", Accept: "application/json" };
      if (token) headers.Authorization = "Token " + token;
      var csrf = cookie("csrftoken");
      if (csrf) headers["X-CSRFToken"] = csrf; /* asked of a session's POSTs; ignored with a token */
      var typed = (opts && opts.headers) || {};
      var usesSavedToken = Boolean(token);
      Object.keys(typed).forEach(function (name) {
        Object.keys(headers).forEach(function (existing) {
          if (existing.toLowerCase() === name.toLowerCase()) delete headers[existing];
        });
        if (name.toLowerCase() === "authorization") usesSavedToken = false;
        headers[name] = String(typed[name]);
      });
      return window
        .fetch(ENDPOINT, { method: "POST", headers: headers, body: JSON.stringify(params), credentials: "same-origin" })
        .then(function (response) {
          if (usesSavedToken) onStatus(response.status === 401 ? "rejected" : "ok");
          return response.text().then(function (text) {
            var body;
            try {
              body = JSON.parse(text);
            } catch (e) {
              return { errors: [{ message: "HTTP " + response.status + ": " + text.slice(0, 500) }] };
            }
            if (response.status === 401) {
              var hint = " Paste a valid API token in the bar above, or sign in (POST /api/auth/login/).";
              if (body && Array.isArray(body.errors) && body.errors.length) {
                body.errors[0].message = "HTTP 401: " + body.errors[0].message + hint;
                return body;
              }
              /* an error body in the REST shape ({"error", "details", "code"}) */
              var error = (body && body.error) || text;
              return { errors: [{ message: "HTTP 401: " + error + hint, extensions: { code: body && body.code } }] };
            }
            return body;
          });
        });
    };
  }

  function TokenBar(props) {
    var draftState = React.useState("");
    var draft = draftState[0];
    var setDraft = draftState[1];
    var status;
    if (!props.token && props.session) status = "No token: signed in as " + props.session + " (session).";
    else if (!props.token) status = "No token: operations answer 401.";
    else if (props.status === "rejected") status = "The token was rejected (401): paste another.";
    else status = "Token \u2026" + props.token.slice(-4) + " in use (kept in this browser).";

    return h(
      "form",
      {
        className: "ikl-token-bar",
        onSubmit: function (event) {
          event.preventDefault();
          var token = normalise(draft);
          if (token) props.onSave(token);
          setDraft("");
        },
      },
      h("label", { htmlFor: "ikl-token" }, "API token"),
      h("input", {
        id: "ikl-token",
        name: "token",
        type: "password",
        autoComplete: "off",
        spellCheck: false,
        placeholder: props.token ? "paste another token to replace it" : "paste the key printed by ikl create_token",
        value: draft,
        onChange: function (event) {
          setDraft(event.target.value);
        },
      }),
      h("button", { type: "submit", id: "ikl-token-save" }, "Use token"),
      props.token
        ? h("button", { type: "button", id: "ikl-token-forget", onClick: function () { props.onSave(""); } }, "Forget")
        : null,
      h(
        "span",
        { className: "ikl-token-status", role: "status", "data-state": props.token ? props.status || "set" : "none" },
        status
      )
    );
  }

  function App() {
    var tokenState = React.useState(readToken);
    var token = tokenState[0];
    var setToken = tokenState[1];
    var statusState = React.useState(null);
    var status = statusState[0];
    var setStatus = statusState[1];
    /* A new fetcher when the token changes: GraphiQL then fetches the schema again with it. */
    var fetcher = React.useMemo(function () {
      return makeFetcher(token, setStatus);
    }, [token]);
    var sessionState = React.useState("");
    var session = sessionState[0];
    var setSession = sessionState[1];
    /* A session signed in on this origin (no token sent): who it is, for the bar. */
    React.useEffect(function () {
      if (token) return;
      window
        .fetch(ME, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (me) {
          setSession(me && me.auth_method === "session" ? String(me.username) : "");
        })
        .catch(function () {
          setSession("");
        });
    }, [token]);

    function save(next) {
      writeToken(next);
      setStatus(null);
      setToken(next);
    }

    return h(
      React.Fragment,
      null,
      h(TokenBar, { token: token, status: status, session: session, onSave: save }),
      h(
        "div",
        { className: "ikl-graphiql" },
        h(GraphiQL, {
          fetcher: fetcher,
          defaultQuery: DEFAULT_QUERY,
          defaultEditorToolsVisibility: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: false,
          inputValueDeprecation: true,
        })
      )
    );
  }

  root.textContent = "";
  ReactDOM.createRoot(root).render(h(App));
})();
