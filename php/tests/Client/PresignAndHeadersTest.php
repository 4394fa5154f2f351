<?php

declare(strict_types=1);

namespace TrioS3Rpc\Tests\Client;

use PHPUnit\Framework\TestCase;
use TrioS3Rpc\Client;
use TrioS3Rpc\Exception\InvalidRequest;
use TrioS3Rpc\Tests\LiveServer;

/**
 * Presigned uploads and downloads used from PHP with plain HTTP (PHP's own http:// stream,
 * no SDK), object headers, and Copy/Move onto themselves, over every connection kind.
 */
final class PresignAndHeadersTest extends TestCase
{
    /** @return array<string, array{Client}> */
    public static function clients(): array
    {
        return LiveServer::clients();
    }

    /**
     * @param array<string, string> $headers
     * @return array{int, string, list<string>} status, body, response headers
     */
    private static function http(string $method, string $url, string $body = '', array $headers = []): array
    {
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "$name: $value";
        }
        $context = stream_context_create(['http' => [
            'method' => $method, 'header' => $lines, 'content' => $body, 'ignore_errors' => true,
        ]]);
        $answer = file_get_contents($url, false, $context);
        /** @var list<string> $http_response_header */
        preg_match('~^HTTP/\S+ (\d{3})~', $http_response_header[0], $m);
        return [(int) $m[1], (string) $answer, $http_response_header];
    }

    /** @param list<string> $responseHeaders */
    private static function header(array $responseHeaders, string $name): ?string
    {
        foreach ($responseHeaders as $line) {
            if (stripos($line, "$name:") === 0) {
                return trim(substr($line, strlen($name) + 1));
            }
        }
        return null;
    }

    /** @dataProvider clients */
    public function testPresignedPutFromPlainHttp(Client $client): void
    {
        $path = LiveServer::unique('put/photo.jpg');
        $upload = $client->getUploadUrl('sw', $path, 300, 'image/jpeg');
        self::assertSame(['Content-Type' => 'image/jpeg'], $upload->headers);
        self::assertEqualsWithDelta(time() + 300, $upload->expiresAt, 5);
        [$status] = self::http('PUT', $upload->url, "\xff\xd8 a jpeg", $upload->headers);
        self::assertSame(200, $status);
        $meta = $client->getMetadata('sw', $path);
        self::assertSame(9, $meta->size);
        self::assertSame('image/jpeg', $meta->mimeType);
        self::assertSame("\xff\xd8 a jpeg", $client->read('sw', $path)->content);

        // On the ACL bucket the canned ACL is one of the headers to send.
        $acl = $client->getUploadUrl('moto', $path, 300);
        self::assertSame(['x-amz-acl' => 'private'], $acl->headers);
        // Headers beyond the signed ones may be sent (PHP's http stream insists on a Content-Type).
        [$status] = self::http('PUT', $acl->url, 'acl', $acl->headers + ['Content-Type' => 'text/plain']);
        self::assertSame(200, $status);
        self::assertSame('private', $client->getMetadata('moto', $path)->visibility);
    }

    /** @dataProvider clients */
    public function testPresignedPostFormWithinAndOverItsSizeLimit(Client $client): void
    {
        $prefix = LiveServer::unique('inbox/');
        $form = $client->getUploadForm('sw', $prefix, 1000, 300, 'image/');
        self::assertStringEndsWith($prefix . '${filename}', $form->fields['key']);

        $post = static function (string $filename, string $bytes, string $type) use ($form): array {
            $boundary = bin2hex(random_bytes(8));
            $body = '';
            foreach ($form->fields + ['Content-Type' => $type] as $name => $value) {
                $body .= "--$boundary\r\nContent-Disposition: form-data; name=\"$name\"\r\n\r\n$value\r\n";
            }
            $body .= "--$boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"$filename\"\r\n"
                . "Content-Type: $type\r\n\r\n$bytes\r\n--$boundary--\r\n";
            return self::http('POST', $form->url, $body, ['Content-Type' => "multipart/form-data; boundary=$boundary"]);
        };

        [$status] = $post('cat.png', str_repeat('p', 600), 'image/png');
        self::assertContains($status, [200, 201, 204]);
        self::assertSame(str_repeat('p', 600), $client->read('sw', $prefix . 'cat.png')->content);
        self::assertSame('image/png', $client->getMetadata('sw', $prefix . 'cat.png')->mimeType);

        [$status, $body] = $post('big.png', str_repeat('p', 1001), 'image/png');
        self::assertContains($status, [400, 403], $body);
        self::assertStringContainsString('EntityTooLarge', $body);
        self::assertFalse($client->exists('sw', $prefix . 'big.png'));

        [$status] = $post('page.html', '<p>', 'text/html');
        self::assertContains($status, [400, 403]);
        self::assertFalse($client->exists('sw', $prefix . 'page.html'));
    }

    /** @dataProvider clients */
    public function testNamedDownloadAndObjectHeaders(Client $client): void
    {
        $path = LiveServer::unique('report.bin');
        $headers = [
            'cache_control' => 'max-age=60', 'content_disposition' => 'inline',
            'content_encoding' => 'identity', 'content_language' => 'fr', 'expires' => '2000000000',
        ];
        $client->write('sw', $path, '%PDF', contentType: 'application/pdf', headers: $headers);
        self::assertSame($headers, $client->getMetadata('sw', $path)->headers);

        $url = $client->getPublicUrl('sw', $path, 60, 'application/x-download', 'attachment; filename="r.pdf"')->url;
        [$status, $body, $response] = self::http('GET', $url);
        self::assertSame(200, $status);
        self::assertSame('%PDF', $body);
        self::assertSame('application/x-download', self::header($response, 'Content-Type'));
        self::assertSame('attachment; filename="r.pdf"', self::header($response, 'Content-Disposition'));

        $client->copy('sw', $path, 'sw', "$path.copy", headers: ['cache_control' => 'no-store']);
        $copied = $client->getMetadata('sw', "$path.copy");
        self::assertSame(['cache_control' => 'no-store'] + $headers, $copied->headers);
        self::assertSame('application/pdf', $copied->mimeType);

        $this->expectException(InvalidRequest::class);
        $client->write('sw', $path, 'x', headers: ['content_language' => "fr\r\nX-Evil: 1"]);
    }

    /** @dataProvider clients */
    public function testCopyAndMoveOntoThemselvesChangeNothing(Client $client): void
    {
        $path = LiveServer::unique('self.txt');
        $client->write('moto', $path, 'itself', visibility: 'public');
        $before = $client->getMetadata('moto', $path);
        self::assertSame(6, $client->copy('moto', $path, 'moto', $path)->size);
        self::assertSame(6, $client->move('moto', $path, 'moto', $path)->size);
        $after = $client->getMetadata('moto', $path);
        self::assertSame($before->etag, $after->etag);
        self::assertSame('public', $after->visibility);
        self::assertSame('itself', $client->read('moto', $path)->content);
    }
}
