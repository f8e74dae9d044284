import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.security.KeyStore;
import java.security.cert.X509Certificate;
import javax.net.ssl.HttpsURLConnection;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

/**
 * Test program for tlstap's Java capture.
 *   server PORT KEYSTORE PASS: HttpsServer; GET answers "hello <path>", POST echoes the body.
 *   client: reads "h1|h2|urlconn METHOD URL [BODY]" lines on stdin, prints "STATUS BODY" per line.
 */
public class TlsApp {
    public static void main(String[] args) throws Exception {
        if (args[0].equals("server")) server(Integer.parseInt(args[1]), args[2], args[3].toCharArray());
        else client();
    }

    static void server(int port, String ks, char[] pass) throws Exception {
        KeyStore k = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(ks)) { k.load(in, pass); }
        KeyManagerFactory kmf = KeyManagerFactory.getInstance("SunX509");
        kmf.init(k, pass);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), null, null);
        HttpsServer s = HttpsServer.create(new InetSocketAddress("127.0.0.1", port), 16);
        s.setHttpsConfigurator(new HttpsConfigurator(ctx));
        s.createContext("/", ex -> {
            byte[] req = ex.getRequestBody().readAllBytes();
            byte[] body = ex.getRequestMethod().equals("POST") ? req
                    : ("hello " + ex.getRequestURI().getPath()).getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().add("Content-Type", "text/plain");
            ex.getResponseHeaders().add("X-Served-By", "jdk-httpsserver");
            ex.sendResponseHeaders(ex.getRequestMethod().equals("POST") ? 201 : 200, body.length);
            try (OutputStream o = ex.getResponseBody()) { o.write(body); }
        });
        s.start();
        System.out.println("READY");
        System.out.flush();
    }

    static SSLContext trustAll() throws Exception {
        TrustManager[] tm = { new X509TrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String a) {}
            public void checkServerTrusted(X509Certificate[] c, String a) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        } };
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tm, null);
        return ctx;
    }

    static void client() throws Exception {
        SSLContext ctx = trustAll();
        HttpClient h1 = HttpClient.newBuilder().sslContext(ctx).version(HttpClient.Version.HTTP_1_1).build();
        HttpClient h2 = HttpClient.newBuilder().sslContext(ctx).version(HttpClient.Version.HTTP_2).build();
        BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        System.out.println("READY");
        System.out.flush();
        for (String line; (line = r.readLine()) != null; ) {
            String[] f = line.split(" ", 4);
            String body = f.length > 3 ? f[3] : null;
            try {
                if (f[0].equals("urlconn")) {
                    HttpsURLConnection c = (HttpsURLConnection) new URL(f[2]).openConnection();
                    c.setSSLSocketFactory(ctx.getSocketFactory());
                    c.setHostnameVerifier((h, s) -> true);
                    c.setRequestMethod(f[1]);
                    c.setRequestProperty("User-Agent", "tlstap-test-urlconn");
                    if (body != null) {
                        c.setDoOutput(true);
                        c.getOutputStream().write(body.getBytes(StandardCharsets.UTF_8));
                    }
                    int st = c.getResponseCode();
                    ByteArrayOutputStream b = new ByteArrayOutputStream();
                    try (InputStream in = c.getInputStream()) { in.transferTo(b); }
                    System.out.println(st + " " + b.toString(StandardCharsets.UTF_8));
                } else {
                    HttpRequest.Builder rb = HttpRequest.newBuilder(URI.create(f[2])).header("User-Agent", "tlstap-test-" + f[0]);
                    rb.method(f[1], body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofString(body));
                    HttpResponse<String> resp = (f[0].equals("h2") ? h2 : h1).send(rb.build(), HttpResponse.BodyHandlers.ofString());
                    System.out.println(resp.statusCode() + " " + resp.version() + " " + resp.body());
                }
            } catch (Exception e) {
                System.out.println("ERR " + e);
            }
            System.out.flush();
        }
    }
}
