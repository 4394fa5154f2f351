<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Frameworks;

/** The code block of php/README.md that follows a marker comment, so tests run what readers copy. */
final class RecipeBlock
{
    public static function after(string $marker): string
    {
        $readme = (string) file_get_contents(__DIR__ . '/../../README.md');
        $at = strpos($readme, "<!-- $marker");
        if ($at === false || !preg_match('~```\w*\n(.*?)```~s', $readme, $m, 0, $at)) {
            throw new \RuntimeException("php/README.md has no code block after <!-- $marker");
        }
        return $m[1];
    }
}
