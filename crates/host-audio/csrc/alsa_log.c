/* libasound reports its own errors through a printf-style handler that prints to stderr
 * by default. This handler formats the message and hands it to paravox's log
 * (paravox_alsa_log in src/alsa/log.rs); a variadic function cannot be written in
 * stable Rust, hence these few lines of C. */
#include <alsa/asoundlib.h>
#include <stdarg.h>
#include <stdio.h>

void paravox_alsa_log(const char *file, int line, const char *function, int err,
                      const char *message);

static void paravox_alsa_error_handler(const char *file, int line, const char *function,
                                       int err, const char *fmt, ...)
{
    char message[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    paravox_alsa_log(file, line, function, err, message);
}

int paravox_alsa_route_errors(void)
{
    return snd_lib_error_set_handler(paravox_alsa_error_handler);
}
