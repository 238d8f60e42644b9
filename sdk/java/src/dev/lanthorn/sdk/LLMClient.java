package dev.lanthorn.sdk;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Flow;
import java.util.concurrent.SubmissionPublisher;
import java.util.function.Consumer;

/**
 * A client for Lanthorn's API (JDK 17, java.net.http only).
 *
 * <pre>{@code
 * LLMClient client = new LLMClient("http://localhost:8000", System.getenv("LANTHORN_API_KEY"));
 * System.out.println(client.generate(Request.prompt("Once upon a time").maxTokens(200)).text());
 * client.stream(Request.prompt("Tell me a story"), System.out::print);
 * }</pre>
 *
 * 429, 503 and connection failures are retried ({@code maxRetries}, default 2), waiting as
 * Retry-After says; a stream is retried only before its first text.
 */
public class LLMClient {
    public record Message(String role, String content) {}

    public record Usage(long promptTokens, long completionTokens, long totalTokens) {}

    public record Generation(String id, String model, String text, String finishReason, Usage usage) {}

    public record Model(String id, long created, String ownedBy) {}

    /** A completion (a prompt) or chat completion (messages), with optional sampling parameters. */
    public static final class Request {
        private final Map<String, Object> body = new LinkedHashMap<>();

        private Request() {}

        public static Request prompt(String prompt) {
            Request r = new Request();
            r.body.put("prompt", prompt);
            return r;
        }

        public static Request chat(List<Message> messages) {
            Request r = new Request();
            List<Map<String, Object>> list = new ArrayList<>();
            for (Message m : messages) list.add(Map.of("role", m.role(), "content", m.content()));
            r.body.put("messages", list);
            return r;
        }

        public Request model(String model) { body.put("model", model); return this; }
        public Request maxTokens(int n) { body.put("max_tokens", n); return this; }
        public Request temperature(double t) { body.put("temperature", t); return this; }
        public Request topP(double p) { body.put("top_p", p); return this; }
        public Request seed(long seed) { body.put("seed", seed); return this; }
        public Request stop(List<String> stop) { body.put("stop", stop); return this; }

        boolean isChat() { return body.containsKey("messages"); }
    }

    private final String endpoint;
    private final String apiKey;
    private final HttpClient http;
    private String defaultModel;
    private int maxRetries = 2;

    public LLMClient(String endpoint, String apiKey) {
        this.endpoint = endpoint.replaceAll("/+$", "");
        this.apiKey = apiKey;
        // HTTP/1.1: the JDK would otherwise offer an h2c upgrade, which uvicorn refuses.
        this.http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
    }

    /** The model used when a Request names none (default: the first model the server lists). */
    public LLMClient withModel(String model) { this.defaultModel = model; return this; }

    public LLMClient withMaxRetries(int retries) { this.maxRetries = retries; return this; }

    public Generation generate(Request request) {
        return generation(Json.object(body(send(post(request, false), HttpResponse.BodyHandlers.ofString()))));
    }

    public Generation chat(List<Message> messages, Request options) {
        options.body.put("messages", Request.chat(messages).body.get("messages"));
        options.body.remove("prompt");
        return generate(options);
    }

    /** Calls onText with each piece of the answer as it is generated; returns the whole answer. */
    public Generation stream(Request request, Consumer<String> onText) {
        HttpResponse<InputStream> response = send(post(request, true), HttpResponse.BodyHandlers.ofInputStream());
        StringBuilder text = new StringBuilder();
        String id = "", model = "", finish = null;
        Usage usage = new Usage(0, 0, 0);
        try (BufferedReader lines = new BufferedReader(
                new InputStreamReader(response.body(), StandardCharsets.UTF_8))) {
            String line;
            while ((line = lines.readLine()) != null) {
                if (!line.startsWith("data: ") || line.equals("data: [DONE]")) continue;
                Map<String, Object> chunk = Json.object(line.substring(6));
                if (chunk.get("error") instanceof Map<?, ?> error) throw streamed(error);
                id = str(chunk.get("id"));
                model = str(chunk.get("model"));
                if (chunk.get("usage") instanceof Map<?, ?> u) usage = usage(u);
                for (Object c : list(chunk.get("choices"))) {
                    Map<?, ?> choice = (Map<?, ?>) c;
                    String piece = choice.get("delta") instanceof Map<?, ?> d ? str(d.get("content")) : str(choice.get("text"));
                    if (choice.get("finish_reason") != null) finish = str(choice.get("finish_reason"));
                    if (!piece.isEmpty()) {
                        text.append(piece);
                        onText.accept(piece);
                    }
                }
            }
        } catch (IOException e) {
            throw new LanthornException(0, "the stream broke: " + e.getMessage(), "connection_error", null, null);
        }
        return new Generation(id, model, text.toString(), finish, usage);
    }

    /** The answer's pieces as a Flow.Publisher (one generation per publisher, started at once). */
    public Flow.Publisher<String> streamPublisher(Request request) {
        SubmissionPublisher<String> publisher = new SubmissionPublisher<>();
        Thread thread = new Thread(() -> {
            try {
                stream(request, publisher::submit);
                publisher.close();
            } catch (RuntimeException e) {
                publisher.closeExceptionally(e);
            }
        }, "lanthorn-stream");
        thread.setDaemon(true);
        thread.start();
        return publisher;
    }

    public List<Model> models() {
        HttpRequest request = builder("/v1/models").GET().build();
        Map<String, Object> body = Json.object(body(send(request, HttpResponse.BodyHandlers.ofString())));
        List<Model> models = new ArrayList<>();
        for (Object m : list(body.get("data"))) {
            Map<?, ?> model = (Map<?, ?>) m;
            models.add(new Model(str(model.get("id")), num(model.get("created")), str(model.get("owned_by"))));
        }
        return models;
    }

    public List<List<Double>> embed(String model, List<String> inputs) {
        Map<String, Object> payload = new LinkedHashMap<>();
        payload.put("model", model == null ? model() : model);
        payload.put("input", inputs);
        HttpRequest request = builder("/v1/embeddings")
                .POST(HttpRequest.BodyPublishers.ofString(Json.write(payload))).build();
        Map<String, Object> body = Json.object(body(send(request, HttpResponse.BodyHandlers.ofString())));
        List<Object> data = list(body.get("data"));
        List<List<Double>> out = new ArrayList<>();
        for (int i = 0; i < data.size(); i++) out.add(null);
        for (Object item : data) {
            Map<?, ?> e = (Map<?, ?>) item;
            List<Double> vector = new ArrayList<>();
            for (Object v : list(e.get("embedding"))) vector.add(((Number) v).doubleValue());
            out.set((int) num(e.get("index")), vector);
        }
        return out;
    }

    // Plumbing.

    private String model() {
        if (defaultModel == null) {
            List<Model> listed = models();
            if (listed.isEmpty()) throw new LanthornException(404, "the server lists no models", "model_not_found", "model", null);
            defaultModel = listed.get(0).id();
        }
        return defaultModel;
    }

    private HttpRequest post(Request request, boolean stream) {
        Map<String, Object> body = new LinkedHashMap<>(request.body);
        body.putIfAbsent("model", model());
        body.put("stream", stream);
        String path = request.isChat() ? "/v1/chat/completions" : "/v1/completions";
        return builder(path).POST(HttpRequest.BodyPublishers.ofString(Json.write(body))).build();
    }

    private HttpRequest.Builder builder(String path) {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(endpoint + path))
                .header("Content-Type", "application/json").header("User-Agent", "lanthorn-sdk-java/0.1");
        if (apiKey != null && !apiKey.isEmpty()) b.header("Authorization", "Bearer " + apiKey);
        return b;
    }

    private <T> HttpResponse<T> send(HttpRequest request, HttpResponse.BodyHandler<T> handler) {
        for (int attempt = 0; ; attempt++) {
            LanthornException error;
            try {
                HttpResponse<T> response = http.send(request, handler);
                if (response.statusCode() < 400) return response;
                error = failure(response);
            } catch (IOException e) {
                error = new LanthornException(0, "cannot reach " + endpoint + ": " + e.getMessage(), "connection_error", null, null);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new LanthornException(0, "interrupted", "cancelled", null, null);
            }
            boolean retryable = error.isRateLimited() || error.isUnavailable() || error.isConnectionError();
            if (!retryable || attempt >= maxRetries) throw error;
            Duration wait = error.retryAfter() != null ? error.retryAfter() : Duration.ofMillis(500L << attempt);
            try {
                Thread.sleep(Math.min(wait.toMillis(), 30_000));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw error;
            }
        }
    }

    private static LanthornException failure(HttpResponse<?> response) {
        String text = "";
        Object body = response.body();
        try {
            if (body instanceof String s) text = s;
            else if (body instanceof InputStream in) text = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException ignored) {
        }
        Duration retryAfter = response.headers().firstValue("Retry-After")
                .map(v -> Duration.ofMillis((long) (Double.parseDouble(v) * 1000))).orElse(null);
        Map<?, ?> error = Map.of();
        try {
            if (Json.object(text).get("error") instanceof Map<?, ?> e) error = e;
        } catch (IllegalArgumentException ignored) {
        }
        String message = error.get("message") != null ? str(error.get("message")) : "HTTP " + response.statusCode();
        return new LanthornException(response.statusCode(), message, (String) error.get("code"),
                (String) error.get("param"), retryAfter);
    }

    private static LanthornException streamed(Map<?, ?> error) {
        String code = str(error.get("code"));
        int status = List.of("no_worker", "worker_lost", "model_unavailable", "timeout").contains(code) ? 503 : 500;
        return new LanthornException(status, str(error.get("message")), code, (String) error.get("param"), null);
    }

    private static Generation generation(Map<String, Object> body) {
        Map<?, ?> choice = (Map<?, ?>) list(body.get("choices")).get(0);
        String text = choice.get("message") instanceof Map<?, ?> m ? str(m.get("content")) : str(choice.get("text"));
        Usage usage = body.get("usage") instanceof Map<?, ?> u ? usage(u) : new Usage(0, 0, 0);
        return new Generation(str(body.get("id")), str(body.get("model")), text, str(choice.get("finish_reason")), usage);
    }

    private static Usage usage(Map<?, ?> u) {
        return new Usage(num(u.get("prompt_tokens")), num(u.get("completion_tokens")), num(u.get("total_tokens")));
    }

    private static String body(HttpResponse<String> response) { return response.body(); }

    private static String str(Object o) { return o == null ? "" : o.toString(); }

    private static long num(Object o) { return o == null ? 0 : ((Number) o).longValue(); }

    @SuppressWarnings("unchecked")
    private static List<Object> list(Object o) { return o == null ? List.of() : (List<Object>) o; }
}
