/* rng.c: xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number generators",
 * 2018) seeded with splitmix64; every random draw in the library goes through one of these.
 * Gamma variates by Marsaglia and Tsang ("A simple method for generating gamma variables", ACM
 * TOMS 2000), Beta ones as their ratio (mixup's and CutMix's lambda). */
#include "advtrain.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void at_rng_seed(at_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

void at_rng_stream(at_rng *rng, uint64_t seed, uint64_t a, uint64_t b)
{
    /* Mix the three words through splitmix64 so nearby (a, b) give unrelated streams. */
    uint64_t x = seed;
    uint64_t h = splitmix64(&x);
    x = h ^ a;
    h = splitmix64(&x);
    x = h ^ b;
    at_rng_seed(rng, splitmix64(&x));
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t at_rng_next(at_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double at_rng_uniform(at_rng *rng) { return (double)(at_rng_next(rng) >> 11) * 0x1.0p-53; }

uint32_t at_rng_below(at_rng *rng, uint32_t n)
{
    /* Lemire's multiply-and-reject: unbiased without a division in the common case. */
    uint64_t m = (uint64_t)(uint32_t)(at_rng_next(rng) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(at_rng_next(rng) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

double at_rng_normal(at_rng *rng)
{
    /* Box-Muller with one value per call: simple, and the state stays four words. */
    double u1 = 1.0 - at_rng_uniform(rng); /* (0, 1], so log is finite */
    double u2 = at_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void at_rng_normals(at_rng *rng, float *out, size_t n)
{
    /* Both values of each Box-Muller pair, r cos t and r sin t, which are independent: half the
     * uniforms and logarithms per value of at_rng_normal (randomized smoothing draws 10^5 noisy
     * images per point). The first of each pair is the value at_rng_normal would return. */
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double u1 = 1.0 - at_rng_uniform(rng);
        double u2 = at_rng_uniform(rng);
        double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
        out[i] = (float)(r * cos(t));
        out[i + 1] = (float)(r * sin(t));
    }
    if (i < n)
        out[i] = (float)at_rng_normal(rng);
}

void at_rng_shuffle(at_rng *rng, int32_t *items, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = at_rng_below(rng, (uint32_t)i);
        int32_t t = items[i - 1];
        items[i - 1] = items[j];
        items[j] = t;
    }
}

double at_rng_gamma(at_rng *rng, double shape)
{
    /* shape < 1: G(a) = G(a + 1) U^(1/a) */
    if (shape < 1.0) {
        double u = at_rng_uniform(rng);
        return at_rng_gamma(rng, shape + 1.0) * pow(u > 0.0 ? u : 0x1.0p-53, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = at_rng_normal(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = at_rng_uniform(rng);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double at_rng_beta(at_rng *rng, double a, double b)
{
    double x = at_rng_gamma(rng, a), y = at_rng_gamma(rng, b);
    return x + y > 0.0 ? x / (x + y) : 0.5;
}
