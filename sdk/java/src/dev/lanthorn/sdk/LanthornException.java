package dev.lanthorn.sdk;

import java.time.Duration;

/** An error answer from Lanthorn (its OpenAI error object), or a failure to reach it (status 0).
 *  {@link #isRateLimited()}, {@link #isUnauthorized()} and friends tell the kinds apart. */
public class LanthornException extends RuntimeException {
    private final int status;
    private final String code;
    private final String param;
    private final Duration retryAfter;

    public LanthornException(int status, String message, String code, String param, Duration retryAfter) {
        super(message);
        this.status = status;
        this.code = code;
        this.param = param;
        this.retryAfter = retryAfter;
    }

    public int status() { return status; }
    public String code() { return code; }
    public String param() { return param; }
    /** How long the server asked us to wait (null when it did not say). */
    public Duration retryAfter() { return retryAfter; }

    public boolean isBadRequest() { return status == 400; }
    public boolean isUnauthorized() { return status == 401; }
    public boolean isForbidden() { return status == 403; }
    public boolean isNotFound() { return status == 404; }
    public boolean isRateLimited() { return status == 429; }
    public boolean isUnavailable() { return status == 503; }
    public boolean isConnectionError() { return status == 0; }

    @Override
    public String toString() {
        return "LanthornException(" + status + " " + code + "): " + getMessage();
    }
}
