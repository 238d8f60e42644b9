package dev.lanthorn.sdk;

import com.sun.net.httpserver.HttpServer;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

/** Tests against a live Lanthorn (LANTHORN_ENDPOINT, LANTHORN_API_KEY; skipped when unset), run by
 *  build.sh with the JDK alone. Prints one line per test and "N passed, N failed". */
public final class LLMClientTest {
    private static final String ENDPOINT = System.getenv("LANTHORN_ENDPOINT");
    private static final String KEY = System.getenv("LANTHORN_API_KEY");

    interface Check { void run() throws Exception; }

    private static int passed, failed;

    public static void main(String[] args) throws Exception {
        test("it parses and writes JSON", LLMClientTest::itParsesAndWritesJson);
        test("it retries after the time Retry-After says", LLMClientTest::itRetriesAfterRetryAfter);
        if (ENDPOINT == null || KEY == null) {
            System.out.println("SKIP live tests: LANTHORN_ENDPOINT and LANTHORN_API_KEY are not set");
        } else {
            test("it lists models", () -> check(!client().models().isEmpty(), "no models"));
            test("it generates with usage", LLMClientTest::itGenerates);
            test("it chats", () -> {
                var gen = client().chat(List.of(new LLMClient.Message("user", "Say hello.")),
                        LLMClient.Request.prompt("").maxTokens(8).temperature(0));
                check(!gen.text().isBlank(), "empty chat answer");
            });
            test("it streams pieces that make the answer", LLMClientTest::itStreams);
            test("it streams through a Flow.Publisher", LLMClientTest::itPublishes);
            test("it reports a bad key as 401", () -> {
                try {
                    new LLMClient(ENDPOINT, "lt-wrong").withModel("any").generate(LLMClient.Request.prompt("x").maxTokens(1));
                    check(false, "no error");
                } catch (LanthornException e) {
                    check(e.isUnauthorized() && "invalid_api_key".equals(e.code()), e.toString());
                }
            });
            test("it reports an unknown model as 404", () -> {
                try {
                    client().generate(LLMClient.Request.prompt("x").model("no-such-model").maxTokens(1));
                    check(false, "no error");
                } catch (LanthornException e) {
                    check(e.isNotFound(), e.toString());
                }
            });
            test("it names a bad parameter", () -> {
                try {
                    client().generate(LLMClient.Request.prompt("x").temperature(9).maxTokens(1));
                    check(false, "no error");
                } catch (LanthornException e) {
                    check(e.isBadRequest() && "temperature".equals(e.param()), e.toString());
                }
            });
        }
        System.out.println(passed + " passed, " + failed + " failed");
        System.exit(failed == 0 ? 0 : 1);
    }

    private static LLMClient client() {
        LLMClient c = new LLMClient(ENDPOINT, KEY);
        String model = System.getenv("LANTHORN_MODEL");
        return model == null ? c : c.withModel(model);
    }

    private static void itParsesAndWritesJson() {
        Map<String, Object> m = Json.object("{\"a\": [1, 2.5, \"x\\n\\u00e9\"], \"b\": {\"c\": null, \"d\": true}}");
        check(Json.write(m).equals("{\"a\":[1,2.5,\"x\\n\u00e9\"],\"b\":{\"c\":null,\"d\":true}}"), Json.write(m));
    }

    private static void itRetriesAfterRetryAfter() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        AtomicLong first = new AtomicLong();
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/v1/models", exchange -> {
            byte[] body;
            if (calls.incrementAndGet() == 1) {
                first.set(System.nanoTime());
                body = "{\"error\":{\"message\":\"slow down\",\"code\":\"rate_limit_exceeded\"}}".getBytes(StandardCharsets.UTF_8);
                exchange.getResponseHeaders().add("Retry-After", "1");
                exchange.sendResponseHeaders(429, body.length);
            } else {
                body = ("{\"data\":[{\"id\":\"m\",\"created\":1,\"owned_by\":\"lanthorn\"}],\"waited_ms\":"
                        + (System.nanoTime() - first.get()) / 1_000_000 + "}").getBytes(StandardCharsets.UTF_8);
                exchange.sendResponseHeaders(200, body.length);
            }
            exchange.getResponseBody().write(body);
            exchange.close();
        });
        server.start();
        long start = System.nanoTime();
        try {
            var models = new LLMClient("http://127.0.0.1:" + server.getAddress().getPort(), "k").models();
            long waited = (System.nanoTime() - start) / 1_000_000;
            check(models.size() == 1 && calls.get() == 2 && waited >= 1000, "calls " + calls + ", waited " + waited + " ms");
        } finally {
            server.stop(0);
        }
    }

    private static void itGenerates() {
        var gen = client().generate(LLMClient.Request.prompt("Water is").maxTokens(8).temperature(0));
        check(!gen.text().isBlank() && gen.usage().completionTokens() > 0 && gen.usage().completionTokens() <= 8,
                gen.toString());
    }

    private static void itStreams() {
        List<String> pieces = new ArrayList<>();
        var gen = client().stream(LLMClient.Request.prompt("Once upon a time").maxTokens(16).temperature(0), pieces::add);
        check(pieces.size() >= 2 && String.join("", pieces).equals(gen.text()) && gen.finishReason() != null,
                pieces + " / " + gen);
    }

    private static void itPublishes() throws Exception {
        List<String> pieces = new ArrayList<>();
        CountDownLatch done = new CountDownLatch(1);
        Throwable[] failure = new Throwable[1];
        client().streamPublisher(LLMClient.Request.prompt("Rivers").maxTokens(8).temperature(0))
                .subscribe(new Flow.Subscriber<>() {
                    public void onSubscribe(Flow.Subscription s) { s.request(Long.MAX_VALUE); }
                    public void onNext(String item) { synchronized (pieces) { pieces.add(item); } }
                    public void onError(Throwable t) { failure[0] = t; done.countDown(); }
                    public void onComplete() { done.countDown(); }
                });
        check(done.await(120, TimeUnit.SECONDS), "the publisher did not complete in 120 s");
        check(failure[0] == null && !pieces.isEmpty(), pieces + " / " + failure[0]);
    }

    private static void check(boolean ok, String why) {
        if (!ok) throw new AssertionError(why);
    }

    private static void test(String name, Check check) {
        try {
            check.run();
            passed++;
            System.out.println("PASS " + name);
        } catch (Throwable t) {
            failed++;
            System.out.println("FAIL " + name + ": " + t);
        }
    }
}
