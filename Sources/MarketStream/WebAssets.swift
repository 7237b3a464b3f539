// The web page at `/`: the book ladder, the trade tape, a price chart and an order form, live over
// `/v1/stream`. Plain HTML, CSS and JavaScript, no build step and no dependencies.
//
// Embedded in the binary rather than shipped as SwiftPM resources: resources live in a bundle directory
// beside the executable, found through Foundation's Bundle at run time, so a `castle` binary copied
// elsewhere would serve no page. Embedded, the binary is the whole server. Edit the text below directly.

enum WebAssets {
    /// index.html
    static let indexHTML = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>castle</title>
        <link rel="stylesheet" href="/style.css">
        </head>
        <body>
        <header>
          <h1>castle</h1>
          <label>Symbol <input id="symbol" value="BTC-USD" size="12"></label>
          <label>Account <input id="account" value="web" size="12"></label>
          <span id="status" data-state="connecting">connecting</span>
        </header>
        <main>
          <section id="book-panel">
            <h2>Book <small id="book-seq"></small></h2>
            <table id="ladder">
              <thead><tr><th>Bid qty</th><th>Price</th><th>Ask qty</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section id="chart-panel">
            <h2>Price</h2>
            <canvas id="chart" width="560" height="220"></canvas>
          </section>
          <section id="tape-panel">
            <h2>Trades</h2>
            <table id="tape">
              <thead><tr><th>Seq</th><th>Side</th><th>Price</th><th>Qty</th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
          <section id="order-panel">
            <h2>Order</h2>
            <form id="order-form">
              <label>Side <select name="side"><option value="buy">buy</option><option value="sell">sell</option></select></label>
              <label>Type <select name="type"><option value="limit">limit</option><option value="market">market</option></select></label>
              <label>Price <input name="price" inputmode="decimal" size="10"></label>
              <label>Qty <input name="qty" inputmode="decimal" size="10"></label>
              <label>TIF <select name="tif"><option>gtc</option><option>ioc</option><option>fok</option><option>post_only</option></select></label>
              <button type="submit">Place</button>
            </form>
            <p id="order-result" role="status"></p>
            <h3>My open orders</h3>
            <table id="my-orders">
              <thead><tr><th>Id</th><th>Side</th><th>Price</th><th>Remaining</th><th></th></tr></thead>
              <tbody></tbody>
            </table>
          </section>
        </main>
        <script src="/app.js"></script>
        </body>
        </html>
        """#

    /// app.js
    static let appJS = #"""
        // castle's page: the book ladder, the trade tape, a price chart and an order form, all live over the
        // WebSocket /v1/stream (docs/serve.md). Plain JavaScript, no build step, no dependencies.
        "use strict";

        const $ = (selector) => document.querySelector(selector);
        const params = new URLSearchParams(location.search);
        if (params.get("symbol")) $("#symbol").value = params.get("symbol");
        if (params.get("account")) $("#account").value = params.get("account");

        // Prices and quantities stay exact decimal strings; they are compared as BigInt at 18 decimals.
        // Numbers (floats) are used only for pixels on the chart.
        function units(text) {
          const negative = text.startsWith("-");
          const [whole, fraction = ""] = (negative ? text.slice(1) : text).split(".");
          const value = BigInt(whole + fraction.padEnd(18, "0").slice(0, 18));
          return negative ? -value : value;
        }

        // Back from units of 10^-18 to canonical decimal text (no trailing zeros).
        function decimalText(value) {
          const negative = value < 0n;
          const digits = (negative ? -value : value).toString().padStart(19, "0");
          const whole = digits.slice(0, -18);
          const fraction = digits.slice(-18).replace(/0+$/, "");
          return (negative ? "-" : "") + whole + (fraction ? "." + fraction : "");
        }

        const state = {
          symbol: $("#symbol").value,
          account: $("#account").value,
          socket: null,
          book: { seq: null, bids: new Map(), asks: new Map() },
          trades: [],
          orders: new Map(),
        };

        function connect() {
          const scheme = location.protocol === "https:" ? "wss" : "ws";
          // Browsers cannot set headers on a WebSocket upgrade: the account rides in the query instead.
          const url = `${scheme}://${location.host}/v1/stream?account=${encodeURIComponent(state.account)}`;
          const socket = new WebSocket(url);
          state.socket = socket;
          setStatus("connecting");
          socket.onopen = () => {
            setStatus("open");
            subscribeAll();
          };
          socket.onmessage = (event) => receive(JSON.parse(event.data));
          socket.onclose = (event) => {
            if (state.socket !== socket) return;
            setStatus("closed", `closed (${event.code}${event.reason ? " " + event.reason : ""}), reconnecting`);
            setTimeout(connect, 1000);
          };
        }

        function send(message) {
          if (state.socket && state.socket.readyState === WebSocket.OPEN) state.socket.send(JSON.stringify(message));
        }

        function subscribeAll() {
          state.book = { seq: null, bids: new Map(), asks: new Map() };
          state.trades = [];
          state.orders.clear();
          send({ op: "subscribe", channel: "book", symbol: state.symbol });
          send({ op: "subscribe", channel: "trades", symbol: state.symbol });
          send({ op: "subscribe", channel: "orders" });
          render();
        }

        function setStatus(stateName, text) {
          const status = $("#status");
          status.dataset.state = stateName;
          status.textContent = text || stateName;
        }

        function receive(message) {
          if (message.error) {
            showResult(`stream: ${message.error.message}`, true);
            return;
          }
          if (message.op) return;  // "subscribed" / "unsubscribed"
          switch (message.channel) {
            case "book": return receiveBook(message);
            case "trades": return receiveTrade(message);
            case "orders": return receiveOrder(message);
          }
        }

        function receiveBook(message) {
          if (message.symbol !== state.symbol) return;
          const book = state.book;
          if (message.type === "snapshot") {
            book.seq = message.seq;
            book.bids = new Map(message.bids);
            book.asks = new Map(message.asks);
          } else {
            if (book.seq === null) return;  // waiting for the snapshot a resubscribe asked for
            if (message.prev_seq !== book.seq) {
              // A gap: something was missed. Subscribe again; a fresh snapshot follows.
              book.seq = null;
              send({ op: "subscribe", channel: "book", symbol: state.symbol });
              return;
            }
            for (const [side, price, qty] of message.changes) {
              const levels = side === "buy" ? book.bids : book.asks;
              if (qty === "0") levels.delete(price); else levels.set(price, qty);
            }
            book.seq = message.seq;
          }
          renderLadder();
        }

        function receiveTrade(message) {
          if (message.symbol !== state.symbol) return;
          state.trades.unshift(message);
          if (state.trades.length > 300) state.trades.length = 300;
          renderTape();
          renderChart();
        }

        function receiveOrder(message) {
          const order = state.orders.get(message.id);
          switch (message.event) {
            case "accepted":
              if (message.type === "limit" && (message.tif === "gtc" || message.tif === "post_only")) {
                state.orders.set(message.id, { id: message.id, side: message.side, price: message.price, remaining: units(message.qty), symbol: message.symbol });
              }
              break;
            case "trade":
              for (const id of [message.maker, message.taker]) {
                const mine = state.orders.get(id);
                if (mine) {
                  mine.remaining -= units(message.qty);
                  if (mine.remaining <= 0n) state.orders.delete(id);
                }
              }
              break;
            case "canceled":
              state.orders.delete(message.id);
              break;
            case "amended":
              if (order) {
                order.price = message.price;
                order.remaining = units(message.qty);
              }
              break;
          }
          renderOrders();
        }

        function sortedLevels(levels, descending) {
          return [...levels.entries()].sort((a, b) => {
            const difference = units(a[0]) - units(b[0]);
            return (descending ? -difference : difference) > 0n ? 1 : difference === 0n ? 0 : -1;
          });
        }

        const depth = 15;

        function renderLadder() {
          const body = $("#ladder tbody");
          const asks = sortedLevels(state.book.asks, false).slice(0, depth).reverse();
          const bids = sortedLevels(state.book.bids, true).slice(0, depth);
          const rows = [];
          for (const [price, qty] of asks) rows.push(`<tr class="ask" data-side="sell" data-price="${price}"><td class="bid"></td><td class="price">${price}</td><td class="ask">${qty}</td></tr>`);
          bids.forEach(([price, qty], index) => rows.push(`<tr class="bid${index === 0 ? " spread" : ""}" data-side="buy" data-price="${price}"><td class="bid">${qty}</td><td class="price">${price}</td><td class="ask"></td></tr>`));
          body.innerHTML = rows.join("");
          $("#book-seq").textContent = state.book.seq === null ? "" : `seq ${state.book.seq}`;
        }

        function renderTape() {
          $("#tape tbody").innerHTML = state.trades.slice(0, 50).map((trade) =>
            `<tr class="${trade.side}" data-seq="${trade.seq}"><td>${trade.seq}</td><td class="side">${trade.side}</td><td>${trade.price}</td><td>${trade.qty}</td></tr>`
          ).join("");
        }

        function renderChart() {
          const canvas = $("#chart");
          const context = canvas.getContext("2d");
          context.clearRect(0, 0, canvas.width, canvas.height);
          const points = state.trades.slice().reverse().map((trade) => Number(trade.price));
          if (points.length === 0) return;
          const low = Math.min(...points), high = Math.max(...points);
          const span = high - low;
          const at = (price, index) => [
            points.length === 1 ? canvas.width / 2 : (index / (points.length - 1)) * (canvas.width - 10) + 5,
            // One price only (a first trade, or a flat market): the middle, not the floor.
            high === low ? canvas.height / 2 : canvas.height - 10 - ((price - low) / span) * (canvas.height - 20),
          ];
          context.strokeStyle = context.fillStyle = "#4dabf7";
          context.lineWidth = 1.5;
          context.beginPath();
          if (points.length === 1) {
            // The first trade: a dot, until there is a line to draw.
            const [x, y] = at(points[0], 0);
            context.arc(x, y, 3, 0, 2 * Math.PI);
            context.fill();
          } else {
            points.forEach((price, index) => {
              const [x, y] = at(price, index);
              if (index === 0) context.moveTo(x, y); else context.lineTo(x, y);
            });
            context.stroke();
          }
          context.fillStyle = "#8a96a3";
          context.fillText(String(high), 5, 12);
          context.fillText(String(low), 5, canvas.height - 2);
        }

        function renderOrders() {
          const rows = [...state.orders.values()].filter((order) => order.symbol === state.symbol).map((order) =>
            `<tr data-id="${order.id}"><td>${order.id}</td><td>${order.side}</td><td>${order.price}</td><td>${decimalText(order.remaining)}</td><td><button data-cancel="${order.id}">Cancel</button></td></tr>`
          );
          $("#my-orders tbody").innerHTML = rows.join("");
        }

        function render() {
          renderLadder();
          renderTape();
          renderChart();
          renderOrders();
        }

        function showResult(text, isError) {
          const result = $("#order-result");
          result.textContent = text;
          result.className = isError ? "error" : "";
        }

        async function api(method, path, body) {
          const response = await fetch(path, {
            method,
            headers: { "Content-Type": "application/json", "X-Castle-Account": state.account },
            body: body === undefined ? undefined : JSON.stringify(body),
          });
          const answer = await response.json().catch(() => ({}));
          if (!response.ok) throw new Error(answer.error ? `${answer.error.code}: ${answer.error.message}` : `HTTP ${response.status}`);
          return answer;
        }

        $("#order-form").addEventListener("submit", async (event) => {
          event.preventDefault();
          const form = new FormData(event.target);
          const order = { symbol: state.symbol, side: form.get("side"), type: form.get("type"), qty: form.get("qty"), tif: form.get("tif") };
          if (order.type === "limit") order.price = form.get("price");
          try {
            const answer = await api("POST", "/v1/orders", order);
            showResult(`order ${answer.id}: ${answer.status}`, false);
          } catch (error) {
            showResult(error.message, true);
          }
        });

        $("#my-orders").addEventListener("click", async (event) => {
          const id = event.target.dataset.cancel;
          if (!id) return;
          try {
            await api("DELETE", `/v1/orders/${id}`);
            showResult(`order ${id}: cancel sent`, false);
          } catch (error) {
            showResult(error.message, true);
          }
        });

        for (const input of ["#symbol", "#account"]) {
          $(input).addEventListener("change", () => {
            const previousSymbol = state.symbol;
            state.symbol = $("#symbol").value;
            if (state.account !== $("#account").value) {
              // The account is fixed for a connection (the upgrade request carries it): open a new one.
              state.account = $("#account").value;
              const old = state.socket;
              state.socket = null;
              if (old) old.close();
              connect();
            } else {
              send({ op: "unsubscribe", channel: "book", symbol: previousSymbol });
              send({ op: "unsubscribe", channel: "trades", symbol: previousSymbol });
              subscribeAll();
            }
          });
        }

        connect();
        """#

    /// style.css
    static let styleCSS = #"""
        body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #101418; color: #e6e6e6; }
        header { display: flex; gap: 1.5em; align-items: center; padding: .5em 1em; background: #1b2128; }
        h1 { font-size: 1.2em; margin: 0; }
        h2 { font-size: 1em; margin: 0 0 .5em; }
        main { display: grid; grid-template-columns: minmax(260px, 1fr) 2fr; gap: 1em; padding: 1em; }
        section { background: #161b21; padding: .75em; border-radius: 6px; }
        table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
        th, td { padding: 2px 6px; text-align: right; }
        th { color: #8a96a3; font-weight: normal; }
        #ladder tr.ask td.ask, #tape tr.sell td.side { color: #ff6b6b; }
        #ladder tr.bid td.bid, #tape tr.buy td.side { color: #51cf66; }
        #ladder td.price { text-align: center; color: #e6e6e6; }
        #ladder tr.spread td { border-top: 1px solid #333; }
        #book-panel { grid-row: span 2; }
        #tape-panel { max-height: 320px; overflow: auto; }
        #status[data-state="open"] { color: #51cf66; }
        #status[data-state="closed"] { color: #ff6b6b; }
        #order-result.error { color: #ff6b6b; }
        form label { margin-right: .75em; }
        input, select, button { background: #0d1115; color: inherit; border: 1px solid #333; padding: 2px 4px; }
        canvas { width: 100%; height: 220px; background: #0d1115; }
        """#
}
