import dev.lanthorn.sdk.LLMClient;

/** Streams a short answer to stdout. Reads LANTHORN_ENDPOINT and LANTHORN_API_KEY. */
public class Stream {
    public static void main(String[] args) {
        String endpoint = System.getenv().getOrDefault("LANTHORN_ENDPOINT", "http://localhost:8000");
        LLMClient client = new LLMClient(endpoint, System.getenv("LANTHORN_API_KEY"));
        client.stream(LLMClient.Request.prompt("The three primary colours are").maxTokens(32).temperature(0),
                text -> { System.out.print(text); System.out.flush(); });
        System.out.println();
    }
}
