//! The operator console: a web UI at `/ui/`, plain ES modules under
//! `src/console/assets/` embedded in the binary (no build step, no Node.js
//! on the user's machine). Third-party code (xterm.js and its add-ons, the
//! asciinema-player) sits in `assets/vendor/`, copied from npm by
//! `scripts/vendor-ui.sh`; the [`vendor`] test keeps it equal to its
//! recorded sums.
//!
//! What this module serves is static and needs no sign-in (the page shows
//! a sign-in form); everything the page calls is guarded by the access
//! table as for any other client. Every asset carries the console's
//! Content-Security-Policy ([`CSP`]), `nosniff`, an `ETag` (the file's
//! SHA-256, so a browser revalidates cheaply and never keeps a stale file
//! after an upgrade), and is compressed when the browser accepts it.
//!
//! See docs/console.md.

#[cfg(test)]
mod vendor;

use actix_web::http::header;
use actix_web::{middleware, web, HttpRequest, HttpResponse};
use rust_embed::Embed;

/// The console's files, embedded at compile time.
#[derive(Embed)]
#[folder = "src/console/assets/"]
struct Assets;

/// The Content-Security-Policy of every console asset.
///
/// - scripts only from the daemon itself: no inline script, no `eval`;
///   `'wasm-unsafe-eval'` lets a page compile WebAssembly and nothing
///   else (not JavaScript's `eval`): the recordings player's terminal
///   emulator is WebAssembly, shipped inside its vendored script;
/// - `connect-src 'self'` covers `fetch` and the same-origin `ws:`/`wss:`
///   WebSockets (CSP Level 3; the browser tests prove Chromium allows them);
/// - styles allow `'unsafe-inline'` because xterm.js's DOM renderer writes
///   its measured cell sizes and theme into `<style>` elements it creates;
///   no style can run code, and the console's own CSS is a file;
/// - no frames, plugins, `<base>` or foreign form targets.
pub const CSP: &str =
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Mounts `/`, `/ui`, `/ui/...` and `/favicon.ico`. Compression applies
/// to the console's files only: the API and WebSockets keep their own
/// framing.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(redirect_to_console))
        .route("/favicon.ico", web::get().to(favicon))
        .service(
            web::scope("/ui")
                .wrap(middleware::Compress::default())
                .route("", web::get().to(redirect_to_console))
                .route("/{path:.*}", web::get().to(asset)),
        );
}

/// `/` and `/ui` lead to the console (Swagger stays at `/swagger/docs/`).
async fn redirect_to_console() -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, "/ui/"))
        .finish()
}

/// `/favicon.ico`, which browsers and tools ask for by that name whatever
/// the page says: the console's icon (an SVG, named by its media type),
/// without a credential like every console file.
async fn favicon(req: HttpRequest) -> HttpResponse {
    asset_or_404(req, "favicon.svg").await
}

/// One embedded file; `/ui/` is `index.html`. A file that does not exist
/// is the usual 404 body (10004).
async fn asset(req: HttpRequest, path: web::Path<String>) -> HttpResponse {
    let path = path.into_inner();
    let name = if path.is_empty() {
        "index.html"
    } else {
        path.as_str()
    };
    asset_or_404(req, name).await
}

/// The embedded file `name`, or the usual 404 body (10004).
async fn asset_or_404(req: HttpRequest, name: &str) -> HttpResponse {
    match Assets::get(name) {
        Some(file) => serve(&req, name, file),
        None => crate::api::not_found(req).await,
    }
}

/// Serves `file`, the embedded file `name`.
fn serve(req: &HttpRequest, name: &str, file: rust_embed::EmbeddedFile) -> HttpResponse {
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        // always revalidate: the names are not hashed, so a cached file
        // must be checked against the running binary's
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(("Cross-Origin-Opener-Policy", "same-origin"));
    if fresh {
        return res.finish();
    }
    // embedded files are static: no copy per request
    let body = match file.data {
        std::borrow::Cow::Borrowed(bytes) => actix_web::body::BoxBody::new(bytes),
        std::borrow::Cow::Owned(bytes) => actix_web::body::BoxBody::new(bytes),
    };
    res.content_type(content_type(name)).body(body)
}

/// The media type of an embedded file, by its extension. Anything not
/// listed (licence files, sums) is plain text, never sniffed.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "text/plain; charset=utf-8",
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_and_styles_get_their_media_types() {
        assert_eq!(content_type("app/main.js"), "text/javascript; charset=utf-8");
        assert_eq!(
            content_type("vendor/xterm/xterm.mjs"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("console.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("vendor/xterm/LICENSE"), "text/plain; charset=utf-8");
    }

    #[test]
    fn the_policy_allows_no_inline_script_nor_eval() {
        let script = CSP
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .expect("a script-src directive");
        assert_eq!(script, "script-src 'self' 'wasm-unsafe-eval'");
        // 'wasm-unsafe-eval' is not JavaScript's 'unsafe-eval'
        assert!(!CSP.contains("'unsafe-eval'"));
        assert!(CSP.contains("connect-src 'self'"));
        assert!(CSP.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn the_page_and_its_modules_are_embedded() {
        assert!(Assets::get("index.html").is_some());
        assert!(Assets::get("vendor/xterm/xterm.mjs").is_some());
    }
}
